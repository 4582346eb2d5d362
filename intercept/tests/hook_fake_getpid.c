/*
 * Example hook library: every getpid returns FAKE_PID (424242) without
 * reaching the kernel.  Written against the syscall_intercept hook API
 * only; preload it beside libsyscall_intercept.so.
 */
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"

#define FAKE_PID 424242

static int hook(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
		long *result)
{
	if (nr == SYS_getpid) {
		*result = FAKE_PID;
		return 0;
	}
	return 1;
}

static __attribute__((constructor)) void init(void)
{
	intercept_hook_point = hook;
}
