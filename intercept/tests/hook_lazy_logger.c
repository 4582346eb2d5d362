/*
 * Example hook library in the style of syscall_intercept's syscall_logger:
 * for every system call it formats a line with libc (snprintf, strlen,
 * strchr, memcpy) and writes it with syscall_no_intercept.  It is linked
 * with lazy binding (-z lazy), so the first call of each of those libc
 * functions goes through the dynamic loader's resolver from inside the
 * hook; the resolver makes system calls of its own (glibc 2.41 asks
 * riscv_hwprobe), which must reach the kernel, not this hook again.
 *
 * Lines go to stderr, one per call, only for getpid (so the program's
 * output stays small):  "lazy-hook: getpid -> <n>"; at exit:
 *     lazy-hook calls=<all hooked calls> depth-max=<1 if never re-entered>
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"

static long calls;
static long err_fd = 2;   /* stderr, kept: programs close theirs */
static int depth, depth_max;
static volatile size_t copy_mask = ~(size_t)0;

static int hook(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
		long *result)
{
	char line[160], name[32];

	if (++depth > depth_max)
		depth_max = depth;
	calls++;
	/* every one of these may be unbound on the first call; memcpy is
	 * an IFUNC in glibc 2.41, resolved with riscv_hwprobe (a real call:
	 * the size is unknown to the compiler) */
	snprintf(line, sizeof line, "%s", nr == SYS_getpid ? "getpid" : "other");
	memcpy(name, line, (strlen(line) + 1) & copy_mask);
	if (strchr(name, 'g') == name) {
		*result = syscall_no_intercept(nr, a0, a1, a2, a3, a4, a5);
		int n = snprintf(line, sizeof line, "lazy-hook: %s -> %ld\n",
				 name, *result);
		syscall_no_intercept(SYS_write, err_fd, line, (long)n);
		depth--;
		return 0;
	}
	depth--;
	return 1;
}

static __attribute__((constructor)) void init(void)
{
	long fd = syscall_no_intercept(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 200);
	if (fd >= 0)
		err_fd = fd;
	intercept_hook_point = hook;
}

static __attribute__((destructor)) void report(void)
{
	char line[96];
	int n = snprintf(line, sizeof line, "lazy-hook calls=%ld depth-max=%d\n",
			 calls, depth_max);
	if (n > 0)
		syscall_no_intercept(SYS_write, err_fd, line, (long)n);
}
