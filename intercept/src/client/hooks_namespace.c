/*
 * hooks_namespace.c - renameat(2), symlinkat, linkat, mknodat, truncate,
 * utimensat, fchmodat, fchownat, fchmod, fchown, the xattr calls, and path
 * calls gkfs does not support.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

static int
rename_common(long nr, const long *a, unsigned flags, long *res)
{
	struct gk_resolved o, n;
	int route = gk_route_two_paths(nr, a, &o, &n, res);   /* EXDEV: mv copies */

	if (route != GK_ON_GKFS)
		return route;
	return HANDLED(gkfs_rename(o.path, n.path, flags));
}

int
hook_renameat(const long *a, long *res)
{
#ifdef SYS_renameat
	return rename_common(SYS_renameat, a, 0, res);
#else
	return PASS;
#endif
}

int
hook_renameat2(const long *a, long *res)
{
	return rename_common(SYS_renameat2, a, (unsigned)a[4], res);
}

int
hook_symlinkat(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(SYS_symlinkat, a, 1, 2, &r, res);

	if (route != GK_ON_GKFS)
		return route;
	char redirect[GK_PATH_MAX + 1];
	long rc = gkfs_symlink((const char *)a[0], r.path, redirect);
	if (rc == GK_REDIRECT)
		rc = gk_kernel_abs(SYS_symlinkat, a, 1, 2, redirect);
	return HANDLED(rc);
}

/* Hard links: gkfs has none (EPERM, as file systems without links say). */
int
hook_linkat(const long *a, long *res)
{
	struct gk_resolved o, n;
	int route = gk_route_two_paths(SYS_linkat, a, &o, &n, res);

	if (route != GK_ON_GKFS)
		return route;
	return HANDLED(-EPERM);
}

/* Device nodes, FIFOs and sockets cannot live in gkfs; a regular file
 * through mknod is a create. */
int
hook_mknodat(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(SYS_mknodat, a, 0, 1, &r, res);
	char redirect[GK_PATH_MAX + 1];

	if (route != GK_ON_GKFS)
		return route;
	if ((a[2] & S_IFMT) == S_IFREG || (a[2] & S_IFMT) == 0) {
		long fd = gkfs_open(r.path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		                    (mode_t)(a[2] & 07777), redirect);
		if (fd >= 0 && fd != GK_REDIRECT) {
			gk_fd_forget((int)fd);
			syscall_no_intercept(SYS_close, fd);
			fd = 0;
		}
		return HANDLED(fd == GK_REDIRECT ? -EXDEV : fd);
	}
	return HANDLED(-EPERM);
}

int
hook_truncate(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(SYS_truncate, a, -1, 0, &r, res);

	if (route != GK_ON_GKFS)
		return route;
	if (r.must_dir)
		return HANDLED(gkfs_dir_only_error(r.path));   /* truncate("f/") */
	return HANDLED(gkfs_truncate(r.path, (int64_t)a[1]));
}

int
hook_utimensat(const long *a, long *res)
{
	struct gk_resolved r;
	const struct timespec *times = (const struct timespec *)a[2];
	int flags = (int)a[3], route;

	/* futimens(fd) is the kernel's NULL-path form; "" + AT_EMPTY_PATH too */
	if (!a[1] || (!*(const char *)a[1] && (flags & AT_EMPTY_PATH))) {
		struct gk_file *f = gk_fd_get((int)a[0]);
		long rc;
		if (!f)
			return PASS;
		rc = gkfs_utimens(f->ofd->path, times, 0);
		gk_file_put(f);
		return HANDLED(rc);
	}
	route = gk_route_path(SYS_utimensat, a, 0, 1, &r, res);
	if (route != GK_ON_GKFS)
		return route;
	return HANDLED(gkfs_utimens(r.path, times, !(flags & AT_SYMLINK_NOFOLLOW)));
}

int
hook_fchmodat(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(SYS_fchmodat, a, 0, 1, &r, res);

	if (route != GK_ON_GKFS)
		return route;
	return HANDLED(gkfs_chmod(r.path, (mode_t)a[2], 1));
}

int
hook_fchownat(const long *a, long *res)
{
	struct gk_resolved r;
	int flags = (int)a[4], route;

	if (a[1] && !*(const char *)a[1] && (flags & AT_EMPTY_PATH)) {
		struct gk_file *f = gk_fd_get((int)a[0]);
		long rc;
		if (!f)
			return PASS;
		rc = gkfs_chown(f->ofd->path, (int)a[2], (int)a[3], 0);
		gk_file_put(f);
		return HANDLED(rc);
	}
	route = gk_route_path(SYS_fchownat, a, 0, 1, &r, res);
	if (route != GK_ON_GKFS)
		return route;
	return HANDLED(gkfs_chown(r.path, (int)a[2], (int)a[3],
	                          !(flags & AT_SYMLINK_NOFOLLOW)));
}

int
hook_fchmod(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc;

	if (!f)
		return PASS;
	rc = gkfs_chmod(f->ofd->path, (mode_t)a[1], 0);
	gk_file_put(f);
	return HANDLED(rc);
}

int
hook_fchown(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc;

	if (!f)
		return PASS;
	rc = gkfs_chown(f->ofd->path, (int)a[1], (int)a[2], 0);
	gk_file_put(f);
	return HANDLED(rc);
}

/* Extended attributes: gkfs stores none.  ENOTSUP, which ls, cp -a and
 * tar treat as "this file system has no xattrs". */
int
hook_path_xattr(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(gk_current_nr, a, -1, 0, &r, res);

	if (route != GK_ON_GKFS)
		return route;
	return HANDLED(-ENOTSUP);
}

int
hook_fd_xattr(const long *a, long *res)
{
	if (!gk_fd_is_gkfs((int)a[0]))
		return PASS;
	return HANDLED(-ENOTSUP);
}

/* inotify_add_watch(fd, path, mask): no change notification in gkfs. */
int
hook_path_unsupported(const long *a, long *res)
{
	struct gk_resolved r;
	int kind = gk_resolve(AT_FDCWD, (const char *)a[1], &r);

	if (kind != GK_GKFS)
		return PASS;
	return HANDLED(-ENOTSUP);
}
