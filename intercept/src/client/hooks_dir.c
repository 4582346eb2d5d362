/*
 * hooks_dir.c - getdents64, mkdirat, unlinkat (and AT_REMOVEDIR), chdir,
 * fchdir, getcwd.
 *
 * A cwd inside gkfs exists only in this library: the kernel's cwd stays
 * where it was, relative paths of intercepted calls are resolved against
 * the gkfs cwd, and exec passes it on in LIBGKFS_CWD (exec_state.c).
 */
#include <errno.h>
#include <string.h>

#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"

int
hook_getdents64(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long n;

	if (!f)
		return PASS;
	n = gkfs_getdents64(f, (void *)a[1], (size_t)a[2]);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_mkdirat(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(SYS_mkdirat, a, 0, 1, &r, res);

	if (route != GK_ON_GKFS)
		return route;
	char redirect[GK_PATH_MAX + 1];
	long rc = gkfs_mkdir(r.path, (mode_t)a[2], redirect);
	if (rc == GK_REDIRECT)     /* through a symlink out of gkfs */
		rc = gk_kernel_abs(SYS_mkdirat, a, 0, 1, redirect);
	return HANDLED(rc);
}

int
hook_unlinkat(const long *a, long *res)
{
	struct gk_resolved r;
	int route = gk_route_path(SYS_unlinkat, a, 0, 1, &r, res);

	if (route != GK_ON_GKFS)
		return route;
	if (a[2] & ~(long)AT_REMOVEDIR)
		return HANDLED(-EINVAL);
	if (r.must_dir && !(a[2] & AT_REMOVEDIR))
		return HANDLED(gkfs_dir_only_error(r.path));   /* unlink("f/") */
	char redirect[GK_PATH_MAX + 1];
	long rc = (a[2] & AT_REMOVEDIR) ? gkfs_rmdir(r.path, redirect) : gkfs_unlink(r.path, redirect);
	if (rc == GK_REDIRECT)
		rc = gk_kernel_abs(SYS_unlinkat, a, 0, 1, redirect);
	return HANDLED(rc);
}

static long
enter_gkfs_dir(const char *path)
{
	char final[GK_PATH_MAX + 1], redirect[GK_PATH_MAX + 1];
	struct gk_record rec;
	long rc = gkfs_record(path, 1, &rec, final, redirect);

	if (rc == GK_REDIRECT) {
		rc = syscall_no_intercept(SYS_chdir, redirect);
		if (!rc)
			gk_cwd_kernel_changed();
		return rc;
	}
	if (rc)
		return rc;
	if ((rec.mode & GK_S_IFMT) != GK_S_IFDIR)
		return -ENOTDIR;
	gk_cwd_set_gkfs(final);
	return 0;
}

int
hook_chdir(const long *a, long *res)
{
	struct gk_resolved r;
	int kind = gk_resolve(AT_FDCWD, (const char *)a[0], &r);
	long rc;

	if (kind < 0)
		return HANDLED(kind);
	if (kind == GK_GKFS)
		return HANDLED(enter_gkfs_dir(r.path));
	rc = kind == GK_KERNEL_ABS ? syscall_no_intercept(SYS_chdir, r.path)
	                           : gk_kernel(SYS_chdir, a);
	if (rc == 0)
		gk_cwd_kernel_changed();
	return HANDLED(rc);
}

int
hook_fchdir(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc;

	if (f) {
		if (!f->ofd->is_dir)
			rc = -ENOTDIR;
		else {
			gk_cwd_set_gkfs(f->ofd->path);
			rc = 0;
		}
		gk_file_put(f);
		return HANDLED(rc);
	}
	rc = gk_kernel(SYS_fchdir, a);
	if (rc == 0)
		gk_cwd_kernel_changed();
	return HANDLED(rc);
}

int
hook_getcwd(const long *a, long *res)
{
	size_t len;
	int rc;

	if (!gk_cwd_in_gkfs())
		return PASS;
	rc = gk_cwd_get((char *)a[0], (size_t)a[1], &len);
	if (rc == -ENOENT)
		return PASS;
	return HANDLED(rc ? rc : (long)len + 1);   /* the kernel counts the NUL */
}
