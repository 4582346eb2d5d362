/*
 * hooks.h - hook_<syscall>: decode the arguments of one system call, decide
 * whether it is gkfs's (paths.c, fdtable.c) and call gkfs_<op>, or let the
 * kernel have it.  Each returns 0 when it produced *res (a kernel-style
 * result, -errno on error) and 1 to let the core perform the call as is.
 */
#ifndef GKFS_CLIENT_HOOKS_H
#define GKFS_CLIENT_HOOKS_H

#include <fcntl.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "paths.h"

typedef int (*gk_hook_fn)(const long *a, long *res);
/* The number of the system call being hooked (for shared handlers). */
extern __thread long gk_current_nr __attribute__((tls_model("initial-exec")));

#define HANDLED(v) (*res = (long)(v), 0)
#define PASS 1

static inline long
gk_kernel(long nr, const long *a)
{
	return syscall_no_intercept(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* The call with argument `di` (a dirfd, or -1 for none) and `pi` (the
 * path) replaced by AT_FDCWD and an absolute kernel path. */
static inline long
gk_kernel_abs(long nr, const long *a, int di, int pi, const char *path)
{
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};
	if (di >= 0)
		b[di] = AT_FDCWD;
	b[pi] = (long)path;
	return gk_kernel(nr, b);
}

/* hooks_route.c: where a call with path arguments goes.  Returned by the
 * route functions when the path(s) are gkfs's; any other value is what the
 * hook returns as it is (PASS, or 0 with *res set). */
#define GK_ON_GKFS (-1)

/* Resolves argument `pi` (relative to the dirfd in argument `di`, or to the
 * cwd when di < 0).  GK_ON_GKFS: r->path is the canonical gkfs path.
 * PASS: a kernel path, the call goes on unchanged.  0 with *res set: the
 * path did not resolve (-errno), or it was spelled through the prefix but
 * leads out of it and the call was made on the kernel with it absolute. */
int gk_route_path(long nr, const long *a, int di, int pi, struct gk_resolved *r,
                  long *res);
/* The same for the (olddirfd, oldpath, newdirfd, newpath) calls (renameat,
 * linkat): GK_ON_GKFS only when both are gkfs's; one in gkfs and one not
 * is -EXDEV (the programs then copy). */
int gk_route_two_paths(long nr, const long *a, struct gk_resolved *o,
                       struct gk_resolved *n, long *res);

/* hooks_open.c */
int hook_openat(const long *a, long *res);
int hook_openat2(const long *a, long *res);
int hook_close(const long *a, long *res);
int hook_close_range(const long *a, long *res);
int hook_dup(const long *a, long *res);
int hook_dup3(const long *a, long *res);
/* hooks_io.c */
int hook_read(const long *a, long *res);
int hook_write(const long *a, long *res);
int hook_pread64(const long *a, long *res);
int hook_pwrite64(const long *a, long *res);
int hook_readv(const long *a, long *res);
int hook_writev(const long *a, long *res);
int hook_preadv(const long *a, long *res);
int hook_pwritev(const long *a, long *res);
int hook_preadv2(const long *a, long *res);
int hook_pwritev2(const long *a, long *res);
int hook_lseek(const long *a, long *res);
int hook_fsync(const long *a, long *res);
int hook_ftruncate(const long *a, long *res);
int hook_fallocate(const long *a, long *res);
int hook_fadvise64(const long *a, long *res);
int hook_sendfile(const long *a, long *res);
int hook_copy_file_range(const long *a, long *res);
int hook_splice(const long *a, long *res);
/* hooks_stat.c */
int hook_fstat(const long *a, long *res);
int hook_newfstatat(const long *a, long *res);
int hook_statx(const long *a, long *res);
int hook_faccessat(const long *a, long *res);
int hook_faccessat2(const long *a, long *res);
int hook_readlinkat(const long *a, long *res);
int hook_statfs(const long *a, long *res);
int hook_fstatfs(const long *a, long *res);
/* hooks_dir.c */
int hook_getdents64(const long *a, long *res);
int hook_mkdirat(const long *a, long *res);
int hook_unlinkat(const long *a, long *res);
int hook_chdir(const long *a, long *res);
int hook_fchdir(const long *a, long *res);
int hook_getcwd(const long *a, long *res);
/* hooks_namespace.c */
int hook_renameat(const long *a, long *res);
int hook_renameat2(const long *a, long *res);
int hook_symlinkat(const long *a, long *res);
int hook_linkat(const long *a, long *res);
int hook_mknodat(const long *a, long *res);
int hook_truncate(const long *a, long *res);
int hook_utimensat(const long *a, long *res);
int hook_fchmodat(const long *a, long *res);
int hook_fchownat(const long *a, long *res);
int hook_fchmod(const long *a, long *res);
int hook_fchown(const long *a, long *res);
int hook_path_xattr(const long *a, long *res);
int hook_fd_xattr(const long *a, long *res);
int hook_path_unsupported(const long *a, long *res);
/* hooks_misc.c */
int hook_fcntl(const long *a, long *res);
int hook_flock(const long *a, long *res);
int hook_ioctl(const long *a, long *res);
int hook_mmap(const long *a, long *res);
int hook_munmap(const long *a, long *res);
int hook_msync(const long *a, long *res);
int hook_mremap(const long *a, long *res);
int hook_execve(const long *a, long *res);
int hook_execveat(const long *a, long *res);
int hook_fd_unsupported(const long *a, long *res);
int hook_exit_group(const long *a, long *res);

/* exec_state.c: descriptors and cwd across exec */
void gk_exec_state_adopt(void);
long gk_exec_with_state(long nr, const long *a, int envp_index);

#endif
