/*
 * libsyscall_intercept_hook_point.h - hook API of the gkfs interception core.
 *
 * Source compatible with the syscall_intercept library's hook API, so hook
 * libraries written for it build against libsyscall_intercept.so /
 * libgkfs_intercept.so unchanged.  A hook library sets the pointers below
 * from its own constructor; the core's constructor runs first (it is a
 * dependency of the hook library) and patches the code, and calls go to
 * whatever the pointers hold at the time of each system call.
 */
#ifndef LIBSYSCALL_INTERCEPT_HOOK_POINT_H
#define LIBSYSCALL_INTERCEPT_HOOK_POINT_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Called before every intercepted system call.  Return 0 if the hook
 * handled the call (the program then sees *result), non-zero to have the
 * core execute the system call normally.  Errors are returned the kernel
 * way: *result = -errno.
 */
extern int (*intercept_hook_point)(long syscall_number,
                                   long arg0, long arg1,
                                   long arg2, long arg3,
                                   long arg4, long arg5,
                                   long *result);

/*
 * Called after an intercepted clone / clone3 / fork in the new child
 * (thread or process), on the child's own stack, before the child runs
 * any of the program's code; and in the parent with the child's id.
 */
extern void (*intercept_hook_point_clone_child)(void);
extern void (*intercept_hook_point_clone_parent)(long pid);

/*
 * gkfs extension (not in syscall_intercept): called in the child of a
 * CLONE_VFORK clone (vfork, posix_spawn), on the stack it starts with,
 * before it runs any of the program's code.  Such a child shares its
 * parent's memory until it execs or exits (on hardware; qemu-user runs it
 * as a fork), so the hook may only do async-signal-safe work that no
 * state of the parent depends on (set a flag in thread-local storage,
 * raw system calls).  The parent then gets intercept_hook_point_clone_parent
 * with the child's pid, once the child has exec'd or exited.
 */
#define INTERCEPT_HOOK_POINT_CLONE_VFORK_CHILD 1
extern void (*intercept_hook_point_clone_vfork_child)(void);

/* Execute a system call directly, bypassing every hook. */
long syscall_no_intercept(long syscall_number, ...);

/*
 * The errno encoded in a raw system call result, or 0 if it is none.  As
 * in syscall_intercept, -4096 counts too (the kernel's errors stop at
 * -4095, so no real result is misread either way).
 */
static inline int
syscall_error_code(long result)
{
	if (result < 0 && result >= -0x1000)
		return (int)-result;
	return 0;
}

/*
 * Non-zero if this process is intercepted: INTERCEPT_HOOK_CMDLINE_FILTER
 * unset, or argv[0] equal to it or ending in '/' followed by it.
 */
int syscall_hook_in_process_allowed(void);

#ifdef __cplusplus
}
#endif
#endif
