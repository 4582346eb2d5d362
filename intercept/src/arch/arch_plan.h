/*
 * arch_plan.h - what the arch-neutral planner (src/plan/scan.c) needs from
 * an architecture (src/arch/<arch>/): one of the two interfaces an
 * architecture implements (the other, for the run-time core, is
 * arch_runtime.h).  The scanner owns the linear sweep, the jump-target set
 * and the site list; the arch decodes and shapes windows, and emits
 * (gk_plan_emit, gk_plan_assign of include/gkfs_intercept/plan.h).
 */
#ifndef GKFS_ARCH_PLAN_H
#define GKFS_ARCH_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include "gkfs_intercept/plan.h"

/*
 * The two linear sweeps (src/arch/<arch>/sweep.c).  They call back only on
 * rare events, so the per-instruction loop stays inside the arch code.
 *
 * gk_arch_sweep_sites: every system call instruction, in address order.
 * `back` has bit i set if an instruction starts at pc - 2*i (bit 0: pc
 * itself), as far back as 128 bytes, which is what the window code needs
 * of the instructions before a site.
 *
 * gk_arch_sweep_targets: the target of every direct jump and branch;
 * returns how many such instructions there are.
 */
struct gk_sweep_stats {
	uint64_t insns;        /* instructions (undecodable parcels count one) */
	uint64_t undecodable;  /* 16-bit parcels skipped as undecodable */
	uint64_t syscalls;     /* system call instructions */
};
typedef void (*gk_site_fn)(void *ctx, uint64_t pc, uint64_t back);
typedef void (*gk_target_fn)(void *ctx, uint64_t target);

void gk_arch_sweep_sites(const struct gk_text *t, struct gk_sweep_stats *st,
                         gk_site_fn on_site, void *ctx);
uint64_t gk_arch_sweep_targets(const struct gk_text *t, gk_target_fn on_target,
                               void *ctx);

/* Bytes of the instruction at p (avail readable), as the sweeps step. */
unsigned gk_arch_insn_len(const uint8_t *p, size_t avail);

/*
 * What the scanner knows around one site, without a whole-text bitmap
 * (the planner allocates nothing): bit i stands for address base + 2*i,
 * base = ecall - GK_NEAR_BACK, so [ecall - 64, ecall + 64) is covered.
 */
#define GK_NEAR_BACK 64
struct gk_near {
	uint64_t starts;      /* an instruction starts here (linear sweep) */
	uint64_t targets;     /* a jump target (found or given) lands here */
};

static inline int gk_near_bit(uint64_t mask, uint64_t ecall, uint64_t addr)
{
	uint64_t base = ecall - GK_NEAR_BACK;
	if (addr < base || addr >= base + 128 || (addr & 1))
		return 0;
	return (int)((mask >> ((addr - base) / 2)) & 1);
}

/*
 * Fill site->sysno and the gateway fields (gw_*) for one site.  The window
 * must lie within [lo, hi): lo is the end of the previous site's window (or
 * its ecall's end), hi the next site's ecall, both clipped to the text.
 * Returns the window's end (or ecall + 4 without a window) for the next lo.
 */
uint64_t gk_arch_plan_site(const struct gk_text *text, struct gk_site *site,
                           const struct gk_near *near, uint64_t lo, uint64_t hi);

#endif
