/*
 * frame.h - register frame built by gk_entry (entry.S) and read by the C
 * dispatcher.  Shared between assembly and C, so offsets are plain macros.
 *
 * Only caller-saved state is kept: the dispatcher is ordinary C code, so
 * the callee-saved registers (s0-s11, fs0-fs11) survive it by the ABI, and
 * gp/tp are never touched by code in a shared library.  Everything else a
 * hook could clobber (ra, t0-t6, a0-a7, ft0-ft11, fa0-fa7, fcsr) is saved,
 * because the kernel preserves all of them across an ecall and the program
 * may rely on that.
 */
#ifndef GKFS_RISCV64_FRAME_H
#define GKFS_RISCV64_FRAME_H

#define GK_FR_RA     0
#define GK_FR_T0     8      /* t0..t6 at 8..56 */
#define GK_FR_A0     64     /* a0..a7 at 64..120 */
#define GK_FR_SPIN   128    /* sp when gk_entry was entered (tramp's sp) */
#define GK_FR_FCSR   136
#define GK_FR_FT0    144    /* ft0..ft11 at 144..232 */
#define GK_FR_FA0    240    /* fa0..fa7 at 240..296 */
#define GK_FRAME_SIZE 304   /* multiple of 16 */

/* What gk_dispatch asks the entry to do next. */
#define GK_ACT_RETURN 0     /* return to ret0 with frame a0 as the result */
#define GK_ACT_RAW    1     /* restore all, return to ret1: tramp's ecall */
#define GK_ACT_CLONE  2     /* do the clone ecall here; child gets a stack */

/* ret1 - ret0 in a trampoline: GK_TRAMP_RAW_OFFSET of plan.h (which is C
 * only); dispatch.c checks the two agree. */
#define GK_ENTRY_RAW_OFFSET 12

/* Gap the child path of entry.S leaves below the new stack top. */
#define GK_CHILD_GAP 64

#ifndef __ASSEMBLER__
struct gk_frame {
	long ra;
	long t[7];
	long a[8];          /* a[7] = syscall number */
	long sp_in;         /* 0(sp_in) holds the program's own ra */
	long fcsr;
	double ft[12];
	double fa[8];
};
_Static_assert(sizeof(struct gk_frame) == GK_FRAME_SIZE, "frame layout");

/* Called by entry.S; hidden so the calls bind locally without a PLT. */
__attribute__((visibility("hidden"))) long gk_dispatch(struct gk_frame *f);
__attribute__((visibility("hidden"))) void gk_clone_parent_post(struct gk_frame *f, long result);
__attribute__((visibility("hidden"))) void gk_clone_child_post(struct gk_frame *f);
__attribute__((visibility("hidden"))) void gk_entry(void);
#endif
#endif
