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
	int ko = gk_resolve((int)a[0], (const char *)a[1], &o);
	int kn = gk_resolve((int)a[2], (const char *)a[3], &n);
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};

	if (ko < 0)
		return HANDLED(ko);
	if (kn < 0)
		return HANDLED(kn);
	if (ko == GK_GKFS && kn == GK_GKFS)
		return HANDLED(gkfs_rename(o.path, n.path, flags));
	if (ko == GK_GKFS || kn == GK_GKFS)
		return HANDLED(-EXDEV);   /* mv then copies and removes */
	if (ko == GK_KERNEL && kn == GK_KERNEL)
		return PASS;
	if (ko == GK_KERNEL_ABS) {
		b[0] = AT_FDCWD;
		b[1] = (long)o.path;
	}
	if (kn == GK_KERNEL_ABS) {
		b[2] = AT_FDCWD;
		b[3] = (long)n.path;
	}
	return HANDLED(gk_kernel(nr, b));
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
	int done, kind = gk_path_arg(SYS_symlinkat, a, 1, 2, &r, res, &done);

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
	return HANDLED(gkfs_symlink((const char *)a[0], r.path));
}

/* Hard links: gkfs has none (EPERM, as file systems without links say). */
int
hook_linkat(const long *a, long *res)
{
	struct gk_resolved o, n;
	int ko = gk_resolve((int)a[0], (const char *)a[1], &o);
	int kn = gk_resolve((int)a[2], (const char *)a[3], &n);
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};

	if (ko < 0)
		return HANDLED(ko);
	if (kn < 0)
		return HANDLED(kn);
	if (ko == GK_GKFS && kn == GK_GKFS)
		return HANDLED(-EPERM);
	if (ko == GK_GKFS || kn == GK_GKFS)
		return HANDLED(-EXDEV);
	if (ko == GK_KERNEL && kn == GK_KERNEL)
		return PASS;
	if (ko == GK_KERNEL_ABS) {
		b[0] = AT_FDCWD;
		b[1] = (long)o.path;
	}
	if (kn == GK_KERNEL_ABS) {
		b[2] = AT_FDCWD;
		b[3] = (long)n.path;
	}
	return HANDLED(gk_kernel(SYS_linkat, b));
}

/* Device nodes, FIFOs and sockets cannot live in gkfs; a regular file
 * through mknod is a create. */
int
hook_mknodat(const long *a, long *res)
{
	struct gk_resolved r;
	int done, kind = gk_path_arg(SYS_mknodat, a, 0, 1, &r, res, &done);
	char redirect[GK_PATH_MAX + 1];

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
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
	int done, kind = gk_path_arg(SYS_truncate, a, -1, 0, &r, res, &done);

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
	return HANDLED(gkfs_truncate(r.path, (int64_t)a[1]));
}

int
hook_utimensat(const long *a, long *res)
{
	struct gk_resolved r;
	const struct timespec *times = (const struct timespec *)a[2];
	int flags = (int)a[3], done, kind;

	if (!a[1]) {   /* futimens(fd): the kernel's NULL-path form */
		struct gk_file *f = gk_fd_get((int)a[0]);
		long rc;
		if (!f)
			return PASS;
		rc = gkfs_utimens(f->ofd->path, times, 0);
		gk_file_put(f);
		return HANDLED(rc);
	}
	if (!*(const char *)a[1] && (flags & AT_EMPTY_PATH)) {
		struct gk_file *f = gk_fd_get((int)a[0]);
		long rc;
		if (!f)
			return PASS;
		rc = gkfs_utimens(f->ofd->path, times, 0);
		gk_file_put(f);
		return HANDLED(rc);
	}
	kind = gk_path_arg(SYS_utimensat, a, 0, 1, &r, res, &done);
	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
	return HANDLED(gkfs_utimens(r.path, times, !(flags & AT_SYMLINK_NOFOLLOW)));
}

int
hook_fchmodat(const long *a, long *res)
{
	struct gk_resolved r;
	int done, kind = gk_path_arg(SYS_fchmodat, a, 0, 1, &r, res, &done);

	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
	return HANDLED(gkfs_chmod(r.path, (mode_t)a[2], 1));
}

int
hook_fchownat(const long *a, long *res)
{
	struct gk_resolved r;
	int flags = (int)a[4], done, kind;

	if (a[1] && !*(const char *)a[1] && (flags & AT_EMPTY_PATH)) {
		struct gk_file *f = gk_fd_get((int)a[0]);
		long rc;
		if (!f)
			return PASS;
		rc = gkfs_chown(f->ofd->path, (int)a[2], (int)a[3], 0);
		gk_file_put(f);
		return HANDLED(rc);
	}
	kind = gk_path_arg(SYS_fchownat, a, 0, 1, &r, res, &done);
	if (done)
		return 0;
	if (kind < 0)
		return HANDLED(kind);
	if (kind != GK_GKFS)
		return PASS;
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
	int kind = gk_resolve(AT_FDCWD, (const char *)a[0], &r);

	if (kind < 0)
		return HANDLED(kind);
	if (kind == GK_KERNEL)
		return PASS;
	if (kind == GK_KERNEL_ABS)
		return HANDLED(gk_kernel_abs(gk_current_nr, a, -1, 0, r.path));
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
