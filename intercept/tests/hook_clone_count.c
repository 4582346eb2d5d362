/*
 * Example hook library: counts post-clone hook calls.  At exit each process
 * prints, on stderr and bypassing the hooks,
 *     clone-hooks pid=P parent=N child=M bad-pids=B allowed=A
 * N counts intercept_hook_point_clone_parent calls, M clone_child calls; a
 * forked child starts from its parent's counts (memory is copied), threads
 * share them.  The pid passed to the parent hook must be positive.  Like
 * syscall_intercept's examples it installs its hooks only where
 * syscall_hook_in_process_allowed() says so (A).
 * A vfork child (gkfs's intercept_hook_point_clone_vfork_child) writes
 *     vfork-child-hook pid=<child pid>
 * at once, with one raw write and nothing else: it shares its parent's
 * memory on hardware.
 */
#include <stdio.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"

static long parent_calls, child_calls, bad_pids;
static int allowed;

static void on_child(void)
{
	__atomic_fetch_add(&child_calls, 1, __ATOMIC_RELAXED);
}

static void on_parent(long pid)
{
	__atomic_fetch_add(&parent_calls, 1, __ATOMIC_RELAXED);
	if (pid <= 0)
		__atomic_fetch_add(&bad_pids, 1, __ATOMIC_RELAXED);
}

static void on_vfork_child(void)
{
	char line[48] = "vfork-child-hook pid=";
	long pid = syscall_no_intercept(SYS_getpid), n = 21;
	char digits[20];
	int k = 0;

	do {
		digits[k++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid);
	while (k)
		line[n++] = digits[--k];
	line[n++] = '\n';
	syscall_no_intercept(SYS_write, 2, line, n);
}

static __attribute__((constructor)) void init(void)
{
	allowed = syscall_hook_in_process_allowed();
	if (!allowed)
		return;
	intercept_hook_point_clone_child = on_child;
	intercept_hook_point_clone_parent = on_parent;
	intercept_hook_point_clone_vfork_child = on_vfork_child;
}

static __attribute__((destructor)) void report(void)
{
	char line[128];
	int n = snprintf(line, sizeof line, "clone-hooks pid=%ld parent=%ld child=%ld bad-pids=%ld allowed=%d\n",
			 syscall_no_intercept(SYS_getpid),
			 __atomic_load_n(&parent_calls, __ATOMIC_RELAXED),
			 __atomic_load_n(&child_calls, __ATOMIC_RELAXED),
			 __atomic_load_n(&bad_pids, __ATOMIC_RELAXED), allowed);
	if (n > 0)
		syscall_no_intercept(SYS_write, 2, line, (long)n);
}
