/*
 * internal_fds.c - keeps the client's own descriptors (libzmq's eventfds,
 * epoll sets and TCP sockets) out of the program's way.
 *
 * Why: the kernel hands out the lowest free number, so libzmq's descriptors
 * used to sit at 3, 4, 5...  A program that does `dup2(fd, 5)` or a shell's
 * `exec 5<file` then silently closed libzmq's epoll set, and its I/O thread
 * aborted later ("Invalid argument (src/epoll.cpp:...)": e2e BUG 4).  So:
 *  - every descriptor created by the client itself (a call made while a hook
 *    runs, or by one of libzmq's threads) is moved to a high number, with
 *    FD_CLOEXEC (it means nothing to an exec'd image);
 *  - libzmq's threads are recognised at their start: the thread that
 *    created them was inside a hook, and recorded the new stack's top;
 *  - the program's close/close_range/dup3 on such a number is refused
 *    (EBADF, or EBUSY for dup3's target) as if it were not open.
 * A forked child abandons the parent's context (rpc.c): the inherited
 * numbers are then the child's to close.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "internal_fds.h"
#include "runtime.h"   /* gk_want_fd_keep */

#define MAX_TRACKED 65536
static unsigned long bits[MAX_TRACKED / (8 * sizeof(unsigned long))];
static int base = -1;   /* first number used; 0: do not move */

#define W(fd) (bits[(unsigned)(fd) / (8 * sizeof(unsigned long))])
#define B(fd) (1UL << ((unsigned)(fd) % (8 * sizeof(unsigned long))))

int
gk_internal_fd(long fd)
{
	return fd >= 0 && fd < MAX_TRACKED &&
	       (__atomic_load_n(&W(fd), __ATOMIC_RELAXED) & B(fd));
}

static void
mark(long fd, int on)
{
	if (fd < 0 || fd >= MAX_TRACKED)
		return;
	/* the program's close of it must reach hook_close (refused) */
	if (on)
		gk_want_fd_keep(fd, GK_FD_KEPT_INTERNAL, 1);
	if (on)
		__atomic_fetch_or(&W(fd), B(fd), __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&W(fd), ~B(fd), __ATOMIC_RELAXED);
	if (!on)
		gk_want_fd_keep(fd, GK_FD_KEPT_INTERNAL, 0);
}

static int
first_high(void)
{
	struct rlimit rl;
	long lim;

	if (base >= 0)
		return base;
	/* The top quarter of the first 4096 numbers (768.. with the usual
	 * limit of 1024): far above what programs dup2 to, and below the
	 * FD_SETSIZE a select() user may still need for its own. */
	if (syscall_no_intercept(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) != 0)
		rl.rlim_cur = 1024;
	lim = rl.rlim_cur > 4096 ? 4096 : (long)rl.rlim_cur;
	base = lim >= 64 ? (int)(lim - lim / 4) : 0;
	return base;
}

/* The descriptor moved above first_high(), or left where it is when there is
 * no room. */
static long
move_high(long fd)
{
	long hi;

	if (fd < 0)
		return fd;
	if (first_high() && fd < base) {
		hi = syscall_no_intercept(SYS_fcntl, fd, F_DUPFD_CLOEXEC, base);
		if (hi >= 0) {
			syscall_no_intercept(SYS_close, fd);
			fd = hi;
		}
	} else {
		syscall_no_intercept(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
	}
	mark(fd, 1);
	return fd;
}

long
gk_internal_adopt(long fd)
{
	return move_high(fd);
}

void
gk_internal_forget(long fd)
{
	mark(fd, 0);
}

int
gk_internal_syscall(long nr, const long *a, long *res)
{
	long r;

	switch (nr) {
	case SYS_socket:
	case SYS_eventfd2:
	case SYS_epoll_create1:
	case SYS_timerfd_create:
	case SYS_accept4:
	case SYS_accept:
		r = syscall_no_intercept(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		*res = move_high(r);
		return 0;
	case SYS_pipe2:
	case SYS_socketpair: {
		int *fds = (int *)(nr == SYS_pipe2 ? a[0] : a[3]);
		r = syscall_no_intercept(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (r == 0) {
			fds[0] = (int)move_high(fds[0]);
			fds[1] = (int)move_high(fds[1]);
		}
		*res = r;
		return 0;
	}
	case SYS_close:
		mark(a[0], 0);
		return 1;
	default:
		return 1;
	}
}

/* --- recognising libzmq's threads -------------------------------------- */
#define MAX_PENDING 16
static uintptr_t pending_top[MAX_PENDING];
/* A thread's first frame lies within this much of its stack's top. */
#define FIRST_FRAME_SPAN (256 * 1024)

void
gk_internal_note_clone(long nr, const long *a)
{
	uintptr_t top = 0;

	if (nr == SYS_clone && (a[0] & CLONE_VM) && !(a[0] & CLONE_VFORK))
		top = (uintptr_t)a[1];
#ifdef SYS_clone3
	else if (nr == SYS_clone3 && a[0]) {
		const struct clone_args *ca = (const struct clone_args *)a[0];
		if ((ca->flags & CLONE_VM) && !(ca->flags & CLONE_VFORK) && ca->stack)
			top = (uintptr_t)(ca->stack + ca->stack_size);
	}
#endif
	if (!top)
		return;
	for (int i = 0; i < MAX_PENDING; i++) {
		uintptr_t zero = 0;
		if (__atomic_compare_exchange_n(&pending_top[i], &zero, top, 0,
		                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return;
	}
}

int
gk_internal_thread_started(void)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);

	for (int i = 0; i < MAX_PENDING; i++) {
		uintptr_t top = __atomic_load_n(&pending_top[i], __ATOMIC_ACQUIRE);
		if (top && here < top && here + FIRST_FRAME_SPAN > top) {
			__atomic_store_n(&pending_top[i], 0, __ATOMIC_RELEASE);
			return 1;
		}
	}
	return 0;
}

void
gk_internal_after_fork(void)
{
	/* The parent's libzmq is abandoned here: its numbers are ordinary
	 * descriptors of the child now, and no thread of it will start. */
	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		for (unsigned k = 0; bits[i] && k < 8 * sizeof(bits[0]); k++)
			if (bits[i] & (1UL << k))
				gk_want_fd_keep((long)(i * 8 * sizeof(bits[0]) + k),
				                GK_FD_KEPT_INTERNAL, 0);
		bits[i] = 0;
	}
	for (int i = 0; i < MAX_PENDING; i++)
		pending_top[i] = 0;
}

long
gk_internal_close_range(unsigned lo, unsigned hi, unsigned flags)
{
	const unsigned per = 8 * sizeof(unsigned long);
	unsigned start = lo;
	long rc;

	for (unsigned fd = lo; fd <= hi && fd < MAX_TRACKED; fd++) {
		if (fd % per == 0 && !__atomic_load_n(&W(fd), __ATOMIC_RELAXED)) {
			fd += per - 1;   /* a word with none of ours */
			continue;
		}
		if (!gk_internal_fd(fd))
			continue;
		if (fd > start) {
			rc = syscall_no_intercept(SYS_close_range, start, fd - 1, flags);
			if (rc != 0)
				return rc;
		}
		start = fd + 1;
	}
	if (start > hi || start < lo)   /* < lo: wrapped past ~0U */
		return 0;
	return syscall_no_intercept(SYS_close_range, start, hi, flags);
}
