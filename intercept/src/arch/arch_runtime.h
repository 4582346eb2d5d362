/*
 * arch_runtime.h - the one interface between the run-time core
 * (src/runtime/) and an architecture (src/arch/<arch>/).  The runtime
 * includes nothing else of an architecture; a port adds a folder
 * src/arch/<arch>/ with
 *   arch.cmake    GKFS_ARCH_PLAN_SOURCES and GKFS_ARCH_RT_SOURCES
 *   arch_frame.h  the entry's register frame and the constants below
 *   the planner side (arch_plan.h) and the run-time side declared here:
 *   gk_entry (assembly), gk_raw6, gk_arch_flush_icache.
 * Usable from assembly (the entry needs the action codes and the frame).
 */
#ifndef GKFS_ARCH_RUNTIME_H
#define GKFS_ARCH_RUNTIME_H

/* What gk_dispatch asks the entry to do next. */
#define GK_ACT_RETURN 0     /* return to the trampoline with the frame's
                               result in the result register */
#define GK_ACT_RAW    1     /* restore everything, return to the
                               trampoline's own system call (ret1) */
#define GK_ACT_CLONE  2     /* make the clone call in the entry; the child
                               starts on its new stack (gk_clone_child_post) */
#define GK_ACT_VFORK  3     /* make a CLONE_VFORK call in the entry with the
                               program's exact sp and registers, nothing of
                               ours on the stack across it (the return
                               address kept in gk_vfork_ra), then run
                               gk_vfork_post in parent and child */

/*
 * Which calls the entry sends through the dispatcher at all (wanted.c
 * fills the tables, the entry reads them before it saves anything): per
 * system call number below GK_WANT_NR - 1 one class byte, and per descriptor
 * below GK_WANT_FDS one byte, non-zero when the hook library marked it
 * (a gkfs descriptor), and a second byte (gk_want_fd_kept), non-zero
 * while the hook keeps any record of that descriptor (a gkfs one, one of
 * its own, a directory it remembers: close must reach it then).  A call
 * whose class says "never", or "only with a marked descriptor" in an
 * unmarked one, goes back to the trampoline's own system call (ret1) with
 * every register as it was: the kernel sees exactly the program's call.
 * A negative descriptor (a sign-extended int: the kernel answers EBADF, or
 * ignores it for anonymous memory) is nobody's mark either.  Numbers and
 * other descriptors beyond the tables always go through the dispatcher.
 */
#define GK_WANT_NR       2048   /* a power of two; the last entry is
                                   always "always" (numbers beyond) */
#define GK_WANT_FDS      65536
#define GK_WANT_NEVER    0   /* straight to the kernel */
#define GK_WANT_ALWAYS   1   /* through the dispatcher */
#define GK_WANT_FD_ARG0  2   /* ... when the first argument is a marked descriptor */
#define GK_WANT_FD_ARG4  3   /* ... when the fifth is (mmap) */
#define GK_WANT_FD_KEPT_ARG0 4 /* ... when the first is a kept descriptor (close) */

/*
 * arch_frame.h defines, for C and assembly:
 *   GK_ARCH_NAME                 "riscv64"
 *   GK_FRAME_SIZE                bytes of the entry's frame
 *   GK_ARCH_TRAMP_STACK_DEPTH    bytes the trampoline pushed on the
 *                                program's stack when the entry runs
 *   GK_ARCH_CHILD_GAP            bytes the entry's child path leaves free
 *                                below a new thread's stack top (>= 64:
 *                                the dispatcher keeps two words there)
 *   GK_ARCH_NEAR_REACH           reach of the short patch (jal on riscv64)
 *   GK_ARCH_FAR_REACH            reach of a gateway's long jump
 *   GK_ARCH_FORCE_FAR_MIN        INTERCEPT_FORCE_GATEWAY: trampolines at
 *                                least this far away
 *   GK_ARCH_R_RELATIVE, GK_ARCH_R_IRELATIVE   ELF relocation types whose
 *                                addends are code addresses
 *   GK_ARCH_SYSCALL_LEN          bytes of the system call instruction
 *   GK_ARCH_VENEER_LEN, GK_ARCH_VENEER_ALIGN   gk_arch_far_veneer's size
 * and, for C: gk_arch_is_syscall_at(addr) (the instruction is there),
 * struct gk_frame with the accessors gk_frame_nr,
 * gk_frame_args (the six arguments, contiguous), gk_frame_set_result,
 * gk_frame_sp_in, gk_frame_set_sp_in (the stack pointer when the entry
 * was entered: the trampoline's pushed words are there).
 */
#include "arch_frame.h"

#ifndef __ASSEMBLER__
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)
/* Provided by the architecture. */
void gk_entry(void);                       /* the shared entry (assembly) */
/* The entry as a veneer reaches it (gk_arch_far_veneer: the veneer's
 * own stack use is undone first). */
void gk_entry_far(void);
/* Writes at `out` the code to place at `at` that takes a trampoline's call
 * on to `target` (gk_entry_far) from any distance; returns its length
 * (GK_ARCH_VENEER_LEN). */
size_t gk_arch_far_veneer(uint8_t *out, uint64_t at, uint64_t target);
long gk_raw6(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
void gk_arch_flush_icache(uint64_t start, uint64_t end);

/* Provided by the runtime (wanted.c), read by the entry. */
extern unsigned char gk_want[GK_WANT_NR];
extern unsigned char gk_want_fd[GK_WANT_FDS];
/* GK_WANT_FDS bytes (read bytewise by the entry), words so that each
 * owner flips its own bit atomically (wanted.c). */
extern uint32_t gk_want_fd_kept[GK_WANT_FDS / 4];

/* Provided by the runtime (dispatch.c), called by the entry. */
long gk_dispatch(struct gk_frame *f);
void gk_clone_parent_post(struct gk_frame *f, long result);
void gk_clone_child_post(struct gk_frame *f);
void gk_vfork_post(struct gk_frame *f);
/* The program's return address across a vfork call (per thread: a vfork
 * child shares it but never writes it before its exec/_exit). */
extern __thread long gk_vfork_ra;
#pragma GCC visibility pop
#endif
#endif
