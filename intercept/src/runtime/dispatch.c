/*
 * dispatch.c - the C side of gk_entry: hook, then perform or hand back.
 *
 * Most calls are performed here with a raw ecall and the result goes back
 * in a0.  Three kinds cannot be made from C:
 *   - rt_sigreturn: the kernel reads the signal frame at the program's sp;
 *   - clone/clone3 with CLONE_VM|CLONE_VFORK (vfork, posix_spawn) or
 *     CLONE_VM and no stack: the child may run on the parent's stack, so
 *     our frames must be gone before the ecall -> the trampoline does the
 *     ecall (GK_ACT_RAW), and no post-clone hook runs (README, "vfork");
 *   - clone/clone3 with a new stack (threads): the child starts with a
 *     foreign sp, so entry.S makes the call and brings the child back
 *     into C on its own stack (GK_ACT_CLONE).
 * No locks: everything here is per call, on the caller's stack.
 *
 * A hook never re-enters itself: while a thread runs a hook (the pre-call
 * hook or a post-clone one) every system call it makes - its own through
 * libc, and ld.so's while resolving a lazily bound symbol for it - goes
 * straight to the kernel, unhooked and unlogged (gk_nested_hook, when set,
 * sees them instead: the gkfs client, which moves its own descriptors).  The flag is per thread
 * (static TLS, initial-exec: one tp-relative load on the fast path).  A
 * thread made by a raw clone without CLONE_SETTLS shares its creator's tp
 * and so its flag; a hook that longjmps out leaves it set (README).
 */
#include <linux/sched.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "runtime.h"

int (*intercept_hook_point)(long, long, long, long, long, long, long,
                            long *);
void (*intercept_hook_point_clone_child)(void);
void (*intercept_hook_point_clone_parent)(long);

static __thread int in_hook __attribute__((tls_model("initial-exec")));

gk_api_hook_fn gk_nested_hook;

/* Across a CLONE_VFORK call (entry.S keeps nothing on the stack): the
 * program's return address, and a0 (the flags) for the log. */
__thread long gk_vfork_ra __attribute__((tls_model("initial-exec")));
static __thread long gk_vfork_a0 __attribute__((tls_model("initial-exec")));
static __thread int gk_vfork_in_hook __attribute__((tls_model("initial-exec")));

/* Whether a call is hooked at all: filters, and not made by a hook
 * (unless the hook asked for its own calls: gk_nested_hook). */
static inline int
is_hooked(long nr)
{
	return (!in_hook || gk_nested_hook) && gk_sys_hooked(nr);
}

/* `nested`: in_hook as read once by the caller (the fast path reads the
 * thread pointer's slot once per call). */
static inline int
call_hook(long nr, const long *a, long *result, int nested)
{
	gk_api_hook_fn fn = nested ? gk_nested_hook : intercept_hook_point;
	int r;

	if (!fn)
		return 1;
	in_hook = 1;
	r = fn(nr, a[0], a[1], a[2], a[3], a[4], a[5], result);
	in_hook = nested;
	return r;
}

static void
call_clone_child_hook(void)
{
	int old = in_hook;

	in_hook = 1;
	intercept_hook_point_clone_child();
	in_hook = old;
}

static void
call_clone_parent_hook(long pid)
{
	int old = in_hook;

	in_hook = 1;
	intercept_hook_point_clone_parent(pid);
	in_hook = old;
}

int
syscall_hook_in_process_allowed(void)
{
	return gk_cfg.allowed;
}

enum call_kind { K_PLAIN, K_NORETURN, K_RAW, K_VFORK, K_CLONE_STACK, K_FORK };

/* For a clone with a new stack, *child_sp is where the child starts. */
static enum call_kind
classify(long nr, const long *a, unsigned long *child_sp)
{
	unsigned long flags, stack = 0;

	switch (nr) {
	case SYS_rt_sigreturn:
		return K_RAW;
#ifdef SYS_vfork
	case SYS_vfork:      /* not on riscv64 (glibc uses clone there) */
		return K_RAW;
#endif
#ifdef SYS_fork
	case SYS_fork:
		return K_FORK;
#endif
	case SYS_exit:
	case SYS_exit_group:
	case SYS_execve:
	case SYS_execveat:
		return K_NORETURN;
	case SYS_clone:
		flags = (unsigned long)a[0];
		stack = (unsigned long)a[1];
		break;
#ifdef SYS_clone3
	case SYS_clone3: {
		const struct clone_args *ca = (const struct clone_args *)a[0];
		/* too small or NULL: the kernel refuses it; let it say so */
		if (!ca || (unsigned long)a[1] < CLONE_ARGS_SIZE_VER0)
			return K_PLAIN;
		flags = ca->flags;
		if (ca->stack)
			stack = ca->stack + ca->stack_size; /* as the kernel does */
		break;
	}
#endif
	default:
		return K_PLAIN;
	}
	/* vfork (glibc passes its own sp as the "new" stack): the child
	 * borrows the parent's stack, so nothing of ours may be on it. */
	if ((flags & CLONE_VM) && (flags & CLONE_VFORK))
		return K_VFORK;
	if ((flags & CLONE_VM) && !stack)
		return K_RAW;
	if (stack) {
		*child_sp = stack;
		return K_CLONE_STACK;
	}
	return K_FORK;
}

/* Below the copied trampoline words (<= 32 bytes), above the child's
 * frame (the entry leaves GK_ARCH_CHILD_GAP bytes). */
#define CHILD_FLAGS_AT 48
#define CHILD_HOOKED_AT 56
_Static_assert(CHILD_HOOKED_AT + 8 <= GK_ARCH_CHILD_GAP, "slots inside the gap");

static unsigned long
clone_flags(long nr, const long *a)
{
#ifdef SYS_clone3
	if (nr == SYS_clone3)
		return ((const struct clone_args *)a[0])->flags;
#endif
	return (unsigned long)a[0];
}

static long
perform(long nr, const long *a)
{
	return gk_raw6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

long
gk_dispatch(struct gk_frame *f)
{
	long nr = gk_frame_nr(f);
	long *a = gk_frame_args(f);
	long result;
	unsigned long child_sp = 0;
	int nested = in_hook;
	int hooked = (!nested || gk_nested_hook) && gk_sys_hooked(nr);
	enum call_kind kind = classify(nr, a, &child_sp);

	if (nr == SYS_rt_sigreturn)
		return GK_ACT_RAW;   /* never hooked: it is not a real call */

	if (hooked && call_hook(nr, a, &result, nested) == 0) {
		gk_log_syscall(nr, a, result, 1, "(hooked)");
		gk_frame_set_result(f, result);
		return GK_ACT_RETURN;
	}

	switch (kind) {
	case K_RAW:
		if (hooked)
			gk_log_syscall(nr, a, 0, 0, "(raw)");
		return GK_ACT_RAW;
	case K_VFORK:
		gk_vfork_a0 = a[0];   /* for the log: a0 will be the result */
		/* the child shares this thread's TLS: a hook it runs that never
		 * returns (an execve performed inside it) leaves in_hook set */
		gk_vfork_in_hook = nested;
		return GK_ACT_VFORK;
	case K_CLONE_STACK: {
		/* what the call block pushed, for the child to pop from its
		 * own stack: see entry.S */
		memcpy((void *)(child_sp - GK_ARCH_TRAMP_STACK_DEPTH),
		       (const void *)gk_frame_sp_in(f), GK_ARCH_TRAMP_STACK_DEPTH);
		/* the child's a0 will be 0: leave it the flags, and whether
		 * its hooks run (its tp may be new), inside the gap */
		*(unsigned long *)(child_sp - CHILD_FLAGS_AT) = clone_flags(nr, a);
		*(unsigned long *)(child_sp - CHILD_HOOKED_AT) = hooked;
		return GK_ACT_CLONE;
	}
	case K_NORETURN:
		if (hooked)
			gk_log_syscall(nr, a, 0, 0, NULL);
		result = perform(nr, a);
		break;
	case K_FORK:
		result = perform(nr, a);
		if (result == 0) {
			gk_log_after_fork();
			if (hooked && intercept_hook_point_clone_child)
				call_clone_child_hook();
		} else if (result > 0) {
			if (hooked && intercept_hook_point_clone_parent)
				call_clone_parent_hook(result);
		}
		break;
	default:
		result = perform(nr, a);
		break;
	}
	if (hooked)
		gk_log_syscall(nr, a, result, 1, NULL);
	gk_frame_set_result(f, result);
	return GK_ACT_RETURN;
}

void
gk_clone_parent_post(struct gk_frame *f, long result)
{
	long nr = gk_frame_nr(f);
	int hooked = is_hooked(nr);

	if (hooked) {
		if (result > 0 && intercept_hook_point_clone_parent)
			call_clone_parent_hook(result);
		gk_log_syscall(nr, gk_frame_args(f), result, 1, NULL);
	}
	gk_frame_set_result(f, result);
}

/* Runs in the new thread/process, on its own stack, before its code. */
void
gk_clone_child_post(struct gk_frame *f)
{
	long nr = gk_frame_nr(f);
	uint64_t child_sp = gk_frame_sp_in(f) + GK_ARCH_CHILD_GAP;

	gk_frame_set_sp_in(f, child_sp - GK_ARCH_TRAMP_STACK_DEPTH);
	if (!(*(unsigned long *)(child_sp - CHILD_FLAGS_AT) & CLONE_VM))
		gk_log_after_fork();   /* a process with its own stack */

	if (*(unsigned long *)(child_sp - CHILD_HOOKED_AT)) {
		if (intercept_hook_point_clone_child)
			call_clone_child_hook();
		gk_log_syscall(nr, gk_frame_args(f), 0, 1, "(child)");
	}
}

void (*intercept_hook_point_clone_vfork_child)(void);

/* Parent side first, before anything reads the flag: see K_VFORK. */
static inline void
vfork_parent_restore(long result)
{
	if (result != 0)
		in_hook = gk_vfork_in_hook;
}

/*
 * After a CLONE_VFORK call (entry.S, .Lvfork), on a fresh frame below the
 * program's sp: in the child, which shares the parent's memory (on
 * hardware; qemu-user runs it as a fork) and runs until it execs or
 * exits, only intercept_hook_point_clone_vfork_child (a gkfs extension:
 * async-signal-safe work only, nothing the parent's state depends on);
 * in the parent, once the child is gone, intercept_hook_point_clone_parent
 * with the child's pid, as for threads.  The log is not reopened for the
 * child (its descriptor table is the parent's until exec anyway).
 */
void
gk_vfork_post(struct gk_frame *f)
{
	long nr = gk_frame_nr(f);
	long result = gk_frame_args(f)[0];
	unsigned long sp = gk_frame_sp_in(f);
	int hooked;
	long args[6];

	vfork_parent_restore(result);
	hooked = is_hooked(nr);

	/* the trampoline's stack words, rebuilt for ret0 to pop */
	sp -= GK_ARCH_TRAMP_STACK_DEPTH;
	*(long *)sp = gk_vfork_ra;
	gk_frame_set_sp_in(f, sp);
	if (!hooked)
		return;
	memcpy(args, gk_frame_args(f), sizeof(args));
	args[0] = gk_vfork_a0;
	if (result == 0) {
		if (intercept_hook_point_clone_vfork_child) {
			int old = in_hook;
			in_hook = 1;
			intercept_hook_point_clone_vfork_child();
			in_hook = old;
		}
		gk_log_syscall(nr, args, 0, 1, "(vfork child)");
		return;
	}
	if (result > 0 && intercept_hook_point_clone_parent)
		call_clone_parent_hook(result);
	gk_log_syscall(nr, args, result, 1, NULL);
}

