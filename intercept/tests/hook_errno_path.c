/*
 * Example hook library: openat and mkdirat of one path fail with EDQUOT
 * (an errno no local file system gives for them here, so a test can tell
 * the hook's answer from the kernel's) and never reach the kernel; every
 * other call passes through.  The path is $HOOK_ERRNO_PATH, read once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"

static const char *denied;

static int hook(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
		long *result)
{
	if ((nr == SYS_openat || nr == SYS_mkdirat) && denied &&
	    strcmp((const char *)a1, denied) == 0) {
		*result = -EDQUOT;
		return 0;
	}
	return 1;
}

static __attribute__((constructor)) void init(void)
{
	denied = getenv("HOOK_ERRNO_PATH");
	intercept_hook_point = hook;
}
