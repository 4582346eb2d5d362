/*
 * passthrough_log.c - the gkfs hook of libgkfs_intercept.so, for now a
 * pass-through: every call goes to the kernel; with INTERCEPT_LOG set the
 * core's log shows each one.  The gkfs client hook replaces this.
 */
#include "libsyscall_intercept_hook_point.h"
#include "runtime.h"

static int
gkfs_passthrough(long nr, long a0, long a1, long a2, long a3, long a4,
                 long a5, long *result)
{
	return 1;   /* not handled: the core performs the call */
}

/* After the core's constructor (priority 101): patching is done. */
__attribute__((constructor(200))) static void
gkfs_hook_init(void)
{
	if (!syscall_hook_in_process_allowed())
		return;
	intercept_hook_point = gkfs_passthrough;
	if (gk_log_enabled())
		gk_log_msg("hook: gkfs pass-through installed");
}
