/*
 * hooks_stat.c - fstat, newfstatat, statx, faccessat(2), readlinkat,
 * statfs, fstatfs.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "dcache.h"
#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"
#include "proc_fd.h"

int
hook_fstat(const long *a, long *res)
{
	struct gk_record r;
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc;

	if (!f)
		return PASS;
	rc = gkfs_fstat(f, &r);
	if (!rc)
		gkfs_fill_stat(&r, f->ofd->path, (struct stat *)a[1]);
	gk_file_put(f);
	return HANDLED(rc);
}

/* newfstatat and statx fill different structures from the same record. */
typedef void (*fill_fn)(const struct gk_record *r, const char *path, void *buf);

static void
fill_stat(const struct gk_record *r, const char *path, void *buf)
{
	gkfs_fill_stat(r, path, buf);
}

/* (dirfd, path, flags) -> the record of the file, or of the descriptor
 * itself for "" + AT_EMPTY_PATH; `final` is the path after symlinks (the
 * inode number is computed from it). */
static int
stat_at(long nr, const long *a, int flags, fill_fn fill, void *buf, long *res)
{
	struct gk_resolved rp;
	struct gk_record r;
	char final[GK_PATH_MAX + 1], redirect[GK_PATH_MAX + 1];
	const char *path = (const char *)a[1];
	int route, rc;

	if (path && !*path && (flags & AT_EMPTY_PATH)) {
		struct gk_file *f = gk_fd_get((int)a[0]);
		if (!f)
			return PASS;
		strcpy(final, f->ofd->path);
		rc = gkfs_fstat(f, &r);
		gk_file_put(f);
	} else {
		route = gk_route_path(nr, a, 0, 1, &rp, res);
		if (route != GK_ON_GKFS)
			return route;
		/* "x/" follows a link even with AT_SYMLINK_NOFOLLOW */
		int follow = rp.must_dir || !(flags & AT_SYMLINK_NOFOLLOW);
		/* right after a readdir of it: the record came with the listing */
		if (gk_dcache_take(rp.path, &r) && !(follow && (r.mode & GK_S_IFMT) == GK_S_IFLNK)) {
			strcpy(final, rp.path);
			rc = 0;
		} else {
			rc = gkfs_record(rp.path, follow, &r, final, redirect);
		}
		if (rc == GK_REDIRECT)
			return HANDLED(gk_kernel_abs(nr, a, 0, 1, redirect));
		if (!rc && rp.must_dir && (r.mode & GK_S_IFMT) != GK_S_IFDIR)
			rc = -ENOTDIR;   /* "file/" */
	}
	if (!rc)
		fill(&r, final, buf);
	return HANDLED(rc);
}

int
hook_newfstatat(const long *a, long *res)
{
	return stat_at(SYS_newfstatat, a, (int)a[3], fill_stat, (void *)a[2], res);
}

int
hook_statx(const long *a, long *res)
{
	return stat_at(SYS_statx, a, (int)a[2], gkfs_fill_statx, (void *)a[4], res);
}

static int
access_common(long nr, const long *a, int flags, long *res)
{
	struct gk_resolved r;
	char redirect[GK_PATH_MAX + 1];
	int route = gk_route_path(nr, a, 0, 1, &r, res);
	long rc;

	if (route != GK_ON_GKFS)
		return route;
	rc = gkfs_access(r.path, (int)a[2], flags, r.must_dir, redirect);
	if (rc == GK_REDIRECT)
		rc = gk_kernel_abs(nr, a, 0, 1, redirect);
	return HANDLED(rc);
}

int
hook_faccessat(const long *a, long *res)
{
	return access_common(SYS_faccessat, a, 0, res);
}

int
hook_faccessat2(const long *a, long *res)
{
	return access_common(SYS_faccessat2, a, (int)a[3], res);
}

int
hook_readlinkat(const long *a, long *res)
{
	struct gk_resolved r;
	char link[GK_PATH_MAX * 2 + 2];
	int exact = 0, route;

	/* The magic link of a gkfs descriptor reads as the file's full path
	 * (the kernel would say "/memfd:gkfs (deleted)"). */
	if (gk_proc_fd_path((const char *)a[1], link, sizeof(link), &exact) && exact) {
		size_t n = strlen(link);
		if ((long)a[3] <= 0)
			return HANDLED(-EINVAL);
		if (n > (size_t)a[3])
			n = (size_t)a[3];   /* truncated, not terminated: readlink(2) */
		memcpy((char *)a[2], link, n);
		return HANDLED(n);
	}
	route = gk_route_path(SYS_readlinkat, a, 0, 1, &r, res);
	if (route != GK_ON_GKFS)
		return route;
	if ((long)a[3] <= 0)
		return HANDLED(-EINVAL);
	char redirect[GK_PATH_MAX + 1];
	long rc = gkfs_readlink(r.path, (char *)a[2], (size_t)a[3], redirect);
	if (rc == GK_REDIRECT)
		rc = gk_kernel_abs(SYS_readlinkat, a, 0, 1, redirect);
	return HANDLED(rc);
}

int
hook_statfs(const long *a, long *res)
{
	struct gk_resolved r;
	struct gk_record rec;
	int route = gk_route_path(SYS_statfs, a, -1, 0, &r, res);
	long rc;

	if (route != GK_ON_GKFS)
		return route;
	rc = gk_fwd_stat(r.path, &rec);
	if (!rc)
		rc = gkfs_statfs((struct statfs *)a[1]);
	return HANDLED(rc);
}

int
hook_fstatfs(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc;

	if (!f)
		return PASS;
	gk_file_put(f);
	rc = gkfs_statfs((struct statfs *)a[1]);
	return HANDLED(rc);
}
