/*
 * hooks_open.c - openat/openat2, close, close_range, dup, dup3.
 * Duplicates are made by the kernel on the placeholder (fdtable.h), so
 * FD_CLOEXEC and the number allocation are the kernel's own.
 */
#include <errno.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <string.h>

#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"
#include "internal_fds.h"
#include "log.h"

static int
open_common(long nr, const long *a, int flags, mode_t mode, long *res)
{
	struct gk_resolved r;
	char redirect[GK_PATH_MAX + 1];
	const char *path = (const char *)a[1];
	int route = gk_route_path(nr, a, 0, 1, &r, res);

	/* A kernel directory above the mount prefix ("/", say): later *at
	 * calls relative to it may lead into gkfs. */
	if (route == PASS && path && path[0] == '/' && gk_is_mount_ancestor(path)) {
		long fd = gk_kernel(nr, a);
		if (fd >= 0)
			gk_paths_note_kernel_dir((int)fd, path);
		return HANDLED(fd);
	}
	if (route != GK_ON_GKFS)
		return route;
	if (r.must_dir) {
		/* "x/" names a directory: never created by open, and a file
		 * there is ENOTDIR (O_DIRECTORY's check), as in the kernel */
		if (flags & O_CREAT)
			return HANDLED(-EISDIR);
		flags |= O_DIRECTORY;
	}
	long fd = gkfs_open(r.path, flags, mode, redirect);
	if (fd == GK_REDIRECT)
		fd = gk_kernel_abs(nr, a, 0, 1, redirect);
	return HANDLED(fd);
}

int
hook_openat(const long *a, long *res)
{
	return open_common(SYS_openat, a, (int)a[2], (mode_t)a[3], res);
}

int
hook_openat2(const long *a, long *res)
{
	const struct open_how *how = (const struct open_how *)a[2];
	struct gk_resolved r;

	if (!how || (size_t)a[3] < sizeof(uint64_t) * 3)
		return PASS;
	if (gk_resolve((int)a[0], (const char *)a[1], &r) != GK_GKFS)
		return PASS;   /* RESOLVE_* rules are the kernel's business */
	if (how->resolve)
		return HANDLED(-EOPNOTSUPP);
	return open_common(SYS_openat2, a, (int)how->flags, (mode_t)how->mode, res);
}

int
hook_close(const long *a, long *res)
{
	int fd = (int)a[0];

	if (gk_internal_fd(fd))
		return HANDLED(-EBADF);   /* not the program's: see internal_fds.c */
	gk_paths_forget_fd(fd);
	if (gk_fd_is_gkfs(fd))
		gk_fd_forget(fd);   /* the kernel closes the placeholder */
	return PASS;
}

struct range { unsigned lo, hi; };

static int
forget_in_range(int fd, struct gk_file *f, void *arg)
{
	struct range *r = arg;
	if ((unsigned)fd >= r->lo && (unsigned)fd <= r->hi)
		gk_fd_forget(fd);
	return 0;
}

int
hook_close_range(const long *a, long *res)
{
	struct range r = {(unsigned)a[0], (unsigned)a[1]};
	long rc;

	if ((unsigned)a[2] & CLOSE_RANGE_CLOEXEC)
		return PASS;   /* the kernel sets FD_CLOEXEC on the placeholders */
	rc = gk_internal_close_range(r.lo, r.hi, (unsigned)a[2]);
	if (rc == 0 && gk_fd_count())
		gk_fd_each(forget_in_range, &r);
	return HANDLED(rc);
}

int
hook_dup(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long fd;

	if (!f)
		return PASS;
	fd = gk_kernel(SYS_dup, a);
	if (fd >= 0)
		gk_fd_install((int)fd, f);
	gk_file_put(f);
	return HANDLED(fd);
}

int
hook_dup3(const long *a, long *res)
{
	struct gk_file *f;
	long fd;

	if (gk_internal_fd(a[1]) && a[0] != a[1])
		return HANDLED(-EBUSY);   /* the client's own descriptor */
	f = gk_fd_get((int)a[0]);
	if (!f && !gk_fd_is_gkfs((int)a[1]))
		return PASS;
	fd = gk_kernel(SYS_dup3, a);
	if (fd >= 0) {
		gk_paths_forget_fd((int)fd);
		if (f)
			gk_fd_install((int)fd, f);
		else
			gk_fd_forget((int)fd);   /* a gkfs descriptor was replaced */
	}
	gk_file_put(f);
	return HANDLED(fd);
}
