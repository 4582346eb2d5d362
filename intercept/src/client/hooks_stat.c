/*
 * hooks_stat.c - fstat, newfstatat, statx, faccessat(2), readlinkat,
 * statfs, fstatfs.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"

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

/* Common part of newfstatat and statx: (dirfd, path, flags) -> record. */
static int
stat_at(long nr, const long *a, int flags, struct gk_record *r, char *final,
        long *res, int *handled)
{
	struct gk_resolved rp;
	char redirect[GK_PATH_MAX + 1];
	const char *path = (const char *)a[1];
	int done, kind, rc;

	*handled = 1;
	if (path && !*path && (flags & AT_EMPTY_PATH)) {
		struct gk_file *f = gk_fd_get((int)a[0]);
		if (!f) {
			*handled = 0;
			return 0;
		}
		strcpy(final, f->ofd->path);
		rc = gkfs_fstat(f, r);
		gk_file_put(f);
		return rc;
	}
	kind = gk_path_arg(nr, a, 0, 1, &rp, res, &done);
	if (done) {
		*handled = 2;
		return 0;
	}
	if (kind < 0)
		return kind;
	if (kind != GK_GKFS) {
		*handled = 0;
		return 0;
	}
	rc = gkfs_record(rp.path, !(flags & AT_SYMLINK_NOFOLLOW), r, final, redirect);
	if (rc == GK_REDIRECT) {
		*res = gk_kernel_abs(nr, a, 0, 1, redirect);
		*handled = 2;
		return 0;
	}
	return rc;
}

int
hook_newfstatat(const long *a, long *res)
{
	struct gk_record r;
	char final[GK_PATH_MAX + 1];
	int handled;
	int rc = stat_at(SYS_newfstatat, a, (int)a[3], &r, final, res, &handled);

	if (!handled)
		return PASS;
	if (handled == 2)
		return 0;
	if (!rc)
		gkfs_fill_stat(&r, final, (struct stat *)a[2]);
	return HANDLED(rc);
}

int
hook_statx(const long *a, long *res)
{
	struct gk_record r;
	char final[GK_PATH_MAX + 1];
	int handled;
	int rc = stat_at(SYS_statx, a, (int)a[2], &r, final, res, &handled);

	if (!handled)
		return PASS;
	if (handled == 2)
		return 0;
	if (!rc)
		gkfs_fill_statx(&r, final, (void *)a[4]);
	return HANDLED(rc);
}

static int
access_common(long nr, const long *a, int flags, long *res)
{
	struct gk_resolved r;
	char redirect[GK_PATH_MAX + 1];
	int done, kind = gk_path_arg(nr, a, 0, 1, &r, res, &done);
	long rc;

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
	rc = gkfs_access(r.path, (int)a[2], flags, redirect);
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
	int done, kind = gk_path_arg(SYS_readlinkat, a, 0, 1, &r, res, &done);

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
	if ((long)a[3] <= 0)
		return HANDLED(-EINVAL);
	return HANDLED(gkfs_readlink(r.path, (char *)a[2], (size_t)a[3]));
}

int
hook_statfs(const long *a, long *res)
{
	struct gk_resolved r;
	struct gk_record rec;
	int done, kind = gk_path_arg(SYS_statfs, a, -1, 0, &r, res, &done);
	long rc;

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
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
