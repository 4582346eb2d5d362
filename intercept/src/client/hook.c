/*
 * hook.c - the gkfs hook of libgkfs_intercept.so: installed from a
 * constructor after the core patched the code; one table maps system call
 * numbers to hook_<syscall> functions (hooks_*.c); everything else goes
 * straight to the kernel.
 *
 * Reentrancy: while a hook runs, a thread-local flag makes every system
 * call it triggers (libzmq, malloc, our own raw calls through libc) pass
 * straight through, so gkfs never recurses into itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "dcache.h"
#include "fdtable.h"
#include "hooks.h"
#include "mmap_shared.h"
#include "internal_fds.h"
#include "log.h"
#include "paths.h"
#include "rpc.h"
#include "runtime.h"

#define MAX_NR 512
/* hook_<syscall> by number: a constant table (relocated by ld.so), not
 * code that fills one in every process's constructor. */
static const gk_hook_fn table[MAX_NR] = {
#define H(name, fn) [SYS_##name] = fn,
	H(openat, hook_openat)
#ifdef SYS_openat2
	H(openat2, hook_openat2)
#endif
	H(close, hook_close)
#ifdef SYS_close_range
	H(close_range, hook_close_range)
#endif
	H(dup, hook_dup)
	H(dup3, hook_dup3)
	H(read, hook_read)
	H(write, hook_write)
	H(pread64, hook_pread64)
	H(pwrite64, hook_pwrite64)
	H(readv, hook_readv)
	H(writev, hook_writev)
	H(preadv, hook_preadv)
	H(pwritev, hook_pwritev)
	H(preadv2, hook_preadv2)
	H(pwritev2, hook_pwritev2)
	H(lseek, hook_lseek)
	H(fsync, hook_fsync)
	H(fdatasync, hook_fsync)
	H(sync_file_range, hook_fsync)
	H(ftruncate, hook_ftruncate)
	H(fallocate, hook_fallocate)
	H(fadvise64, hook_fadvise64)
	H(readahead, hook_fadvise64)
	H(sendfile, hook_sendfile)
	H(copy_file_range, hook_copy_file_range)
	H(splice, hook_splice)
	H(fstat, hook_fstat)
	H(newfstatat, hook_newfstatat)
	H(statx, hook_statx)
	H(faccessat, hook_faccessat)
#ifdef SYS_faccessat2
	H(faccessat2, hook_faccessat2)
#endif
	H(readlinkat, hook_readlinkat)
	H(statfs, hook_statfs)
	H(fstatfs, hook_fstatfs)
	H(getdents64, hook_getdents64)
	H(mkdirat, hook_mkdirat)
	H(unlinkat, hook_unlinkat)
	H(chdir, hook_chdir)
	H(fchdir, hook_fchdir)
	H(getcwd, hook_getcwd)
#ifdef SYS_renameat
	H(renameat, hook_renameat)
#endif
	H(renameat2, hook_renameat2)
	H(symlinkat, hook_symlinkat)
	H(linkat, hook_linkat)
	H(mknodat, hook_mknodat)
	H(truncate, hook_truncate)
	H(utimensat, hook_utimensat)
	H(fchmodat, hook_fchmodat)
#ifdef SYS_fchmodat2
	H(fchmodat2, hook_fchmodat)
#endif
	H(fchownat, hook_fchownat)
	H(fchmod, hook_fchmod)
	H(fchown, hook_fchown)
	H(setxattr, hook_path_xattr)
	H(lsetxattr, hook_path_xattr)
	H(getxattr, hook_path_xattr)
	H(lgetxattr, hook_path_xattr)
	H(listxattr, hook_path_xattr)
	H(llistxattr, hook_path_xattr)
	H(removexattr, hook_path_xattr)
	H(lremovexattr, hook_path_xattr)
	H(fsetxattr, hook_fd_xattr)
	H(fgetxattr, hook_fd_xattr)
	H(flistxattr, hook_fd_xattr)
	H(fremovexattr, hook_fd_xattr)
	H(inotify_add_watch, hook_path_unsupported)
	H(fcntl, hook_fcntl)
	H(flock, hook_flock)
	H(ioctl, hook_ioctl)
	H(mmap, hook_mmap)
	H(munmap, hook_munmap)
	H(msync, hook_msync)
	H(mremap, hook_mremap)
	H(execve, hook_execve)
	H(execveat, hook_execveat)
	H(syncfs, hook_fd_unsupported)
	H(exit_group, hook_exit_group)
#undef H
};
static __thread int in_hook __attribute__((tls_model("initial-exec")));

/* For client code running outside a hook (a thread-exit destructor): its
 * system calls are the client's own, not the program's. */
int
gk_hook_enter_client(void)
{
	int old = in_hook;
	in_hook = 1;
	return old;
}

void
gk_hook_leave_client(int old)
{
	in_hook = old;
}
static long my_pid;
__thread long gk_current_nr __attribute__((tls_model("initial-exec")));

static int
gkfs_hook(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
          long *result)
{
	long a[6] = {a0, a1, a2, a3, a4, a5};
	gk_hook_fn fn;
	int rc;

	if ((unsigned long)nr >= MAX_NR)
		return 1;
	if (in_hook) {
		/* the client's own call: only its descriptors need care */
		if (nr == SYS_clone || nr == SYS_clone3)
			gk_internal_note_clone(nr, a);
		return gk_internal_syscall(nr, a, result);
	}
	if (!(fn = table[nr]))
		return 1;
	in_hook = 1;
	gk_current_nr = nr;
	gkc_config_ensure();   /* the first hooked call loads it (config.h) */
	rc = fn(a, result);
	in_hook = 0;
	return rc;
}

static void
on_clone_child(void)
{
	long pid = syscall_no_intercept(SYS_getpid);

	if (pid == my_pid) {
		/* A thread of this process; libzmq's own never reach gkfs. */
		if (gk_internal_thread_started())
			in_hook = 1;
		return;
	}
	my_pid = pid;
	in_hook = 0;
	gkc_config_after_fork();
	gk_internal_after_fork();
	gk_fdtable_after_fork();
	gk_dcache_after_fork();
	gk_mmap_after_fork();
	gk_paths_after_fork();
	gk_rpc_after_fork();
	gkc_log_after_fork();
}


/*
 * What the core's entry may send straight to the kernel (runtime.h,
 * gk_want_declare): every number with no hook_<syscall> and none the
 * client needs for its own calls; the calls below only when their
 * descriptor argument is a gkfs descriptor (fdtable.c marks them): their
 * hooks pass every other descriptor to the kernel untouched, and the
 * client's own calls of them need nothing (gk_internal_syscall).
 */
static const short fd_arg0_calls[] = {
	SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_readv, SYS_writev,
	SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek,
	SYS_fsync, SYS_fdatasync, SYS_sync_file_range, SYS_syncfs,
	SYS_ftruncate, SYS_fallocate, SYS_fadvise64, SYS_readahead, SYS_fstat,
	SYS_fstatfs, SYS_getdents64, SYS_fchmod, SYS_fchown, SYS_fsetxattr,
	SYS_fgetxattr, SYS_flistxattr, SYS_fremovexattr, SYS_dup,
};
/* The client's own calls that gk_internal_syscall acts on (nested). */
static const short internal_calls[] = {
	SYS_socket, SYS_eventfd2, SYS_epoll_create1, SYS_timerfd_create,
	SYS_accept4, SYS_accept, SYS_pipe2, SYS_socketpair, SYS_close,
	SYS_clone,
#ifdef SYS_clone3
	SYS_clone3,
#endif
};

static void
declare_wanted(void)
{
	static unsigned char classes[MAX_NR];

	for (int nr = 0; nr < MAX_NR; nr++)
		classes[nr] = table[nr] ? GK_WANT_ALWAYS : GK_WANT_NEVER;
	for (size_t i = 0; i < sizeof(fd_arg0_calls) / sizeof(fd_arg0_calls[0]); i++)
		if (table[fd_arg0_calls[i]])
			classes[fd_arg0_calls[i]] = GK_WANT_FD_ARG0;
	classes[SYS_mmap] = GK_WANT_FD_ARG4;
	for (size_t i = 0; i < sizeof(internal_calls) / sizeof(internal_calls[0]); i++)
		classes[internal_calls[i]] = GK_WANT_ALWAYS;
	/* close acts on gkfs descriptors, the client's own (gk_want_fd_keep
	 * in internal_fds.c) and remembered directories (paths.c) only */
	classes[SYS_close] = GK_WANT_FD_KEPT_ARG0;
	gk_want_declare(classes, MAX_NR);
}

/* Called by the core's constructor before it patches (runtime.h): with a
 * fixed declaration, sites of never-wanted static numbers stay unpatched. */
static int declared;   /* by gk_hook_declare: the constructor's is enough */

void
gk_hook_declare(void)
{
	declare_wanted();
	declared = 1;
}

/* After the core's constructor (priority 101): patching is done. */
__attribute__((constructor(200))) static void
gkfs_hook_init(void)
{
	/* The core's own state and raw call rather than the API's
	 * syscall_hook_in_process_allowed / syscall_no_intercept (the same
	 * answers): those are exported, so each is a PLT stub and a variadic
	 * wrapper an emulator translates at every start for this alone. */
	if (!gk_cfg.allowed)
		return;
	my_pid = GK_RAW(SYS_getpid, 0);
	gkc_log_init();
	if (gkc_log_level >= GKC_INFO)
		gkc_config_ensure();   /* its "config:" line at start, as before */
	if (!declared && !gk_want_declared)   /* or a process image restored it */
		declare_wanted();
	/* exit_group's hook closes gkfs descriptors, writes back shared
	 * mappings and lets locks go: until the first gkfs descriptor
	 * (fdtable.c wakes it, an inherited one too) there is nothing to do,
	 * and the dispatcher's path is some 40 blocks an emulator translates
	 * at every exit.  An exit racing another thread's first gkfs open
	 * leaves its descriptor to the daemons' connection probe, as a
	 * killed process does. */
	gk_want_quiet(SYS_exit_group);
	gk_exec_state_adopt();
	intercept_hook_point_clone_child = on_clone_child;
	intercept_hook_point = gkfs_hook;
	/* its own calls too (libzmq descriptors, threads): see runtime.h */
	gk_nested_hook = gkfs_hook;
	if (gk_log_enabled())
		gk_log_msg("hook: gkfs client installed");
}
