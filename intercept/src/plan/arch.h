/*
 * arch.h - what the arch-neutral scanner (scan.c) needs from an
 * architecture (src/arch/<arch>/).  The scanner owns the linear sweep, the
 * jump-target set and the site list; the arch decodes and shapes windows.
 */
#ifndef GKFS_PLAN_ARCH_H
#define GKFS_PLAN_ARCH_H

#include <stddef.h>
#include <stdint.h>
#include "gkfs_intercept/plan.h"

/* One instruction as the scanner sees it. */
struct gk_step {
	uint8_t len;          /* bytes to advance (>= 2) */
	uint8_t is_syscall;
	uint8_t undecodable;
	uint8_t has_target;   /* direct jump/branch: target is valid */
	uint64_t target;
};

void gk_arch_step(const uint8_t *p, size_t avail, uint64_t pc, struct gk_step *out);

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
