/*
 * hooks_misc.c - fcntl, flock, ioctl, mmap, syncfs, execve/execveat on
 * gkfs descriptors and paths.
 *
 * Locks (fcntl record and OFD locks, flock) are held by the daemons:
 * locks.c.
 */
#include <errno.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"
#include "locks.h"
#include "log.h"
#include "mmap_shared.h"

#define SETFL_MASK (O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC)

int
hook_fcntl(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc;

	if (!f) {
		/* F_DUPFD onto numbers is the kernel's; only a gkfs source
		 * matters.  Nothing else here concerns gkfs. */
		return PASS;
	}
	switch ((int)a[1]) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		rc = gk_kernel(SYS_fcntl, a);
		if (rc >= 0)
			gk_fd_install((int)rc, f);
		break;
	case F_GETFD:
	case F_SETFD:
		rc = gk_kernel(SYS_fcntl, a);   /* the placeholder's own flag */
		break;
	case F_GETFL:
		rc = __atomic_load_n(&f->ofd->flags, __ATOMIC_RELAXED) &
		     ~(uint32_t)(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
		break;
	case F_SETFL: {
		uint32_t old = __atomic_load_n(&f->ofd->flags, __ATOMIC_RELAXED), nw;
		do {
			nw = (old & ~(uint32_t)SETFL_MASK) | ((uint32_t)a[2] & SETFL_MASK);
		} while (!__atomic_compare_exchange_n(&f->ofd->flags, &old, nw, 0,
		                                      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
		rc = 0;
		break;
	}
	case F_GETLK:
	case F_SETLK:
	case F_SETLKW:
	case F_OFD_GETLK:
	case F_OFD_SETLK:
	case F_OFD_SETLKW:
		rc = gkfs_fcntl_lock(f, (int)a[1], (struct flock *)a[2]);
		break;
	case F_GETOWN:
	case F_SETOWN:
	case F_GETOWN_EX:
	case F_SETOWN_EX:
	case F_GETSIG:
	case F_SETSIG:
		rc = gk_kernel(SYS_fcntl, a);   /* signal plumbing: harmless */
		break;
	default:
		/* leases, notify, seals, pipe sizes: not for gkfs files (and
		 * never to be applied to the placeholder) */
		rc = -EINVAL;
		break;
	}
	gk_file_put(f);
	return HANDLED(rc);
}

int
hook_flock(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);

	if (!f)
		return PASS;
	long rc = gkfs_flock(f, (int)a[1]);
	gk_file_put(f);
	return HANDLED(rc);
}

/* ioctl: FICLONE/FICLONERANGE (cp --reflink) get EOPNOTSUPP, so cp copies
 * the data; everything else ENOTTY ("not a terminal / no such request"),
 * FIONREAD excepted. */
int
hook_ioctl(const long *a, long *res)
{
	struct gk_file *f = gk_fd_get((int)a[0]);
	long rc = -ENOTTY;

	if (!f)
		return PASS;
	switch ((unsigned long)a[1]) {
	case FICLONE:
	case FICLONERANGE:
		rc = -EOPNOTSUPP;
		break;
	case FIONREAD: {
		struct gk_record r;
		rc = gkfs_fstat(f, &r);
		if (!rc) {
			int64_t off = gk_ofd_offset(f);
			*(int *)a[2] = (int)((int64_t)r.size > off ? (int64_t)r.size - off : 0);
		}
		break;
	}
	case FIOCLEX:
	case FIONCLEX:
		rc = gk_kernel(SYS_ioctl, a);
		break;
	}
	gk_file_put(f);
	return HANDLED(rc);
}

/* mmap of a gkfs file: a shared writable mapping is mmap_shared.c's;
 * private or read-only mappings get an anonymous mapping filled with the
 * file's bytes (later writes to the file are not seen; a private
 * mapping's changes stay private, as they should). */
int
hook_mmap(const long *a, long *res)
{
	struct gk_file *f;
	int prot = (int)a[2], flags = (int)a[3];
	long addr, rc;

	if (flags & MAP_ANONYMOUS)
		return PASS;
	if (!(f = gk_fd_get((int)a[4])))
		return PASS;
	if ((flags & MAP_SHARED) && (prot & PROT_WRITE)) {
		rc = gk_mmap_shared(f, (void *)a[0], (size_t)a[1], prot, flags, a[5]);
		gk_file_put(f);
		return HANDLED(rc);
	}
	if (a[5] < 0 || (a[5] & 4095) || !a[1]) {
		gk_file_put(f);
		return HANDLED(-EINVAL);
	}
	addr = syscall_no_intercept(SYS_mmap, a[0], a[1], PROT_READ | PROT_WRITE,
	        (flags & ~(MAP_SHARED | MAP_SHARED_VALIDATE)) | MAP_PRIVATE | MAP_ANONYMOUS,
	        -1, 0);
	if (addr < 0 && addr > -4096) {
		gk_file_put(f);
		return HANDLED(addr);
	}
	/* reads need a readable descriptor, as the kernel's mmap does */
	rc = gkfs_pread(f, (void *)addr, (size_t)a[1], a[5]);
	if (rc >= 0 && prot != (PROT_READ | PROT_WRITE))
		rc = syscall_no_intercept(SYS_mprotect, addr, a[1], prot);
	gk_file_put(f);
	if (rc < 0) {
		syscall_no_intercept(SYS_munmap, addr, a[1]);
		return HANDLED(rc == -EBADF ? -EACCES : rc);
	}
	return HANDLED(addr);
}

/* munmap/msync of a shared gkfs mapping write it back (mmap_shared.c);
 * every other call costs one atomic load. */
int
hook_munmap(const long *a, long *res)
{
	return gk_mmap_munmap((void *)a[0], (size_t)a[1], res) ? 0 : PASS;
}

int
hook_msync(const long *a, long *res)
{
	return gk_mmap_msync((void *)a[0], (size_t)a[1], (int)a[2], res) ? 0 : PASS;
}

int
hook_mremap(const long *a, long *res)
{
	return gk_mmap_mremap((void *)a[0], (size_t)a[1]) ? HANDLED(-EINVAL) : PASS;
}

/* syncfs on a gkfs descriptor: every daemon flushes everything. */
int
hook_fd_unsupported(const long *a, long *res)
{
	if (!gk_fd_is_gkfs((int)a[0]))
		return PASS;
	return HANDLED(gk_fwd_fsync(NULL, NULL));
}

/* Programs cannot be executed from gkfs (the kernel would have to read
 * them): EACCES.  Otherwise exec carries gkfs state in the environment. */
int
hook_execve(const long *a, long *res)
{
	struct gk_resolved r;
	int kind = gk_resolve(AT_FDCWD, (const char *)a[0], &r);
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};

	if (kind == GK_GKFS)
		return HANDLED(-EACCES);
	if (kind == GK_KERNEL_ABS)
		b[0] = (long)r.path;
	if (!gk_fd_count() && !gk_cwd_in_gkfs() && kind != GK_KERNEL_ABS)
		return PASS;
	return HANDLED(gk_exec_with_state(SYS_execve, b, 2));
}

int
hook_execveat(const long *a, long *res)
{
	struct gk_resolved r;
	int kind;
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]};

	if (gk_fd_is_gkfs((int)a[0]) && a[1] && !*(const char *)a[1])
		return HANDLED(-EACCES);
	kind = gk_resolve((int)a[0], (const char *)a[1], &r);
	if (kind == GK_GKFS)
		return HANDLED(-EACCES);
	if (kind == GK_KERNEL_ABS) {
		b[0] = AT_FDCWD;
		b[1] = (long)r.path;
	}
	if (!gk_fd_count() && !gk_cwd_in_gkfs() && kind != GK_KERNEL_ABS)
		return PASS;
	return HANDLED(gk_exec_with_state(SYS_execveat, b, 3));
}

static int
close_at_exit(int fd, struct gk_file *f, void *arg)
{
	(void)f;
	(void)arg;
	gk_fd_forget(fd);
	return 0;
}

/* exit_group closes every descriptor: open file descriptions shared with
 * other processes learn they lost one (their OFD and flock locks go with
 * the last), and record locks go now rather than when the daemons notice
 * the closed connection. */
int
hook_exit_group(const long *a, long *res)
{
	(void)a;
	(void)res;
	gk_mmap_at_exit();
	if (gk_fd_count())
		gk_fd_each(close_at_exit, NULL);
	gk_locks_at_exit();
	return PASS;
}
