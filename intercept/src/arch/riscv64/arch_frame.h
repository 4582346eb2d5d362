/*
 * arch_frame.h - riscv64 side of src/arch/arch_runtime.h: the register
 * frame built by gk_entry (entry.S) and read by the C dispatcher, and the
 * architecture's constants.  Shared between assembly and C, so offsets are
 * plain macros.
 *
 * Only caller-saved state is kept: the dispatcher is ordinary C code, so
 * the callee-saved registers (s0-s11, fs0-fs11) survive it by the ABI, and
 * gp/tp are never touched by code in a shared library.  Everything else a
 * hook could clobber (ra, t0-t6, a0-a7, ft0-ft11, fa0-fa7, fcsr) is saved,
 * because the kernel preserves all of them across an ecall and the program
 * may rely on that.
 */
#ifndef GKFS_RISCV64_ARCH_FRAME_H
#define GKFS_RISCV64_ARCH_FRAME_H

#define GK_ARCH_NAME "riscv64"

#define GK_FR_RA     0
#define GK_FR_T0     8      /* t0..t6 at 8..56 */
#define GK_FR_A0     64     /* a0..a7 at 64..120 */
#define GK_FR_SPIN   128    /* sp when gk_entry was entered (tramp's sp) */
#define GK_FR_FCSR   136
#define GK_FR_FT0    144    /* ft0..ft11 at 144..232 */
#define GK_FR_FA0    240    /* fa0..fa7 at 240..296 */
#define GK_FRAME_SIZE 304   /* multiple of 16 */

/* ret1 - ret0 in a trampoline: GK_TRAMP_RAW_OFFSET of plan.h (which is C
 * only); runtime.c checks the two agree. */
#define GK_ENTRY_RAW_OFFSET 12

/* Gap the child path of entry.S leaves below the new stack top. */
#define GK_ARCH_CHILD_GAP 64

/* Bytes on the program's stack when gk_entry runs: the call block's 16
 * (the program's ra), for both patch kinds: a gateway stub first undoes
 * the window's push (`ld ra; addi sp,16`, layout.h), so the displaced
 * instructions and the call block run on the program's exact sp. */
#define GK_ARCH_TRAMP_STACK_DEPTH 16

/* jal reaches +-1 MiB (slack for the jal back); a gateway's auipc+jalr
 * +-2 GiB. */
#define GK_ARCH_NEAR_REACH ((1UL << 20) - 256)
#define GK_ARCH_FAR_REACH  ((1UL << 31) - (1UL << 20))
#define GK_ARCH_FORCE_FAR_MIN (4UL << 20)

#define GK_ARCH_R_RELATIVE  3    /* R_RISCV_RELATIVE */
#define GK_ARCH_R_IRELATIVE 58   /* R_RISCV_IRELATIVE */

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

/* gk_arch_far_veneer's size and alignment. */
#define GK_ARCH_VENEER_LEN 32
#define GK_ARCH_VENEER_ALIGN 8

/* The system call instruction (ecall), its length and a check that one
 * is at addr (in readable memory; sites are 2-byte aligned). */
#define GK_ARCH_SYSCALL_LEN 4
static inline int gk_arch_is_syscall_at(unsigned long addr)
{
	const unsigned char *p = (const unsigned char *)addr;
	return !(addr & 1) && p[0] == 0x73 && !p[1] && !p[2] && !p[3];
}

static inline long gk_frame_nr(const struct gk_frame *f) { return f->a[7]; }
static inline long *gk_frame_args(struct gk_frame *f) { return f->a; }
static inline void gk_frame_set_result(struct gk_frame *f, long v) { f->a[0] = v; }
static inline unsigned long gk_frame_sp_in(const struct gk_frame *f) { return (unsigned long)f->sp_in; }
static inline void gk_frame_set_sp_in(struct gk_frame *f, unsigned long v) { f->sp_in = (long)v; }
#endif
#endif
