/*
 * Shared helpers of the riscv64 C test programs.  Each program tests one
 * concern, prints deterministic lines on stdout (so runs with and without a
 * preload can be compared byte for byte) and exits 0 only if every check
 * held.  Failures go to stderr with the line number.
 */
#ifndef GKFS_T_COMMON_H
#define GKFS_T_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                       \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", \
				__FILE__, __LINE__, #cond, errno,         \
				strerror(errno));                         \
			exit(1);                                          \
		}                                                         \
	} while (0)

/*
 * Runs a system call through libc's syscall() (so the ecall executed is
 * glibc's, the one the core patches) whose child starts on a new stack: in
 * the child (return value 0) it calls fn(arg) on that stack, then exits the
 * thread with fn's result via a raw exit.  Returns the parent's result.
 * For SYS_clone: a0 = flags, a1 = stack top, a2 = parent_tid, a3 = tls,
 * a4 = child_tid; for SYS_clone3: a0 = struct clone_args *, a1 = its size.
 * Defined in clone_stub.S.
 */
long syscall_on_new_stack(long nr, long a0, long a1, long a2, long a3, long a4,
			  int (*fn)(void *), void *arg);
/* sp of the last child of syscall_on_new_stack when it started (written by
 * the child, in shared memory): must be the stack top it was given. */
extern char *volatile clone_stub_child_sp;

#endif
