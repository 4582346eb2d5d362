/*
 * plan.h - the contract between the pure planner (decode, plan, emit: no
 * system calls, host-testable, driven from Python through cffi) and the
 * run-time patcher (finds objects, allocates trampolines, writes patches).
 *
 * Addresses are "virtual addresses" in whatever space the caller uses: the
 * run-time patcher passes real addresses, the host tools pass ELF link
 * addresses. The planner never dereferences anything but the given buffers.
 */
#ifndef GKFS_INTERCEPT_PLAN_H
#define GKFS_INTERCEPT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One executable range to scan: bytes[0] lives at vaddr. */
struct gk_text {
	const uint8_t *bytes;
	uint64_t vaddr;
	size_t len;
};

/* How a site is patched. */
enum gk_patch_kind {
	GK_PATCH_NONE = 0,     /* left alone; see gk_site.reason */
	GK_PATCH_JAL = 1,      /* the 4-byte ecall becomes `jal x0, tramp`:
	                          a per-site trampoline within +-1 MiB; nothing
	                          around the ecall moves, nothing is clobbered */
	GK_PATCH_GATEWAY = 2,  /* >= 16-byte window: addi sp; sd ra; auipc ra;
	                          jalr ra; ld ra; addi sp, jumping to a per-site
	                          stub that runs the displaced instructions */
	GK_PATCH_GPOLINE = 3,  /* `jalr gp`-style; only where gp is proven free */
};

/* Why a site was left alone (GK_PATCH_NONE). */
enum gk_reason {
	GK_OK = 0,
	GK_NO_TRAMPOLINE_IN_RANGE,  /* no trampoline memory within jal reach and */
	GK_WINDOW_HAS_TARGET,       /* a jump target falls inside every window */
	GK_WINDOW_UNRELOCATABLE,    /* an instruction in the window can't move */
	GK_WINDOW_TOO_SMALL,        /* text ends / undecodable bytes too close */
	GK_FILTERED,                /* excluded by INTERCEPT_SYS_* filters */
};

/* A planned site. */
struct gk_site {
	uint64_t ecall;         /* vaddr of the ecall instruction */
	uint64_t win_start;     /* window replaced (== ecall for GK_PATCH_JAL) */
	uint32_t win_len;       /* bytes replaced (4 for GK_PATCH_JAL) */
	int32_t  sysno;         /* syscall number if a7 is set statically in the
	                           same basic block, else -1 (for filters/report) */
	uint8_t  kind;          /* enum gk_patch_kind */
	uint8_t  reason;        /* enum gk_reason when kind == GK_PATCH_NONE */
	uint16_t tramp_len;     /* bytes of trampoline/stub this site needs */
	/* Added (fills what was padding, sizeof stays 32): the gateway window
	   gk_plan_scan chose, kept apart so that gk_plan_assign may be called
	   again with another trampoline (JAL overwrites win_start/win_len). */
	uint8_t  gw_back;       /* ecall - gateway window start */
	uint8_t  gw_len;        /* gateway window bytes, 0 if there is none */
	uint8_t  gw_tramp_len;  /* stub bytes that gateway needs */
	uint8_t  gw_reason;     /* enum gk_reason: why there is no window */
};

/* Counters for the report. */
struct gk_scan_stats {
	uint64_t insns;         /* instructions decoded */
	uint64_t ecalls;        /* ecall sites found */
	uint64_t undecodable;   /* 16-bit parcels skipped as undecodable */
	uint64_t targets;       /* jump targets known (given + found); direct
	                           jumps are only swept for when there is a site */
};

/*
 * Scan text, collect jump targets (direct branches/jumps found in text plus
 * the caller's extra_targets: symbol starts, R_RISCV_RELATIVE addends),
 * find every ecall and choose a window for each.  `can_jal(ecall_vaddr)`
 * style decisions are deferred to gk_plan_assign(): scan only records the
 * best gateway window (or why none exists) for every site.
 * Returns the number of sites written (<= max_sites) or -1 on bad input;
 * stats may be NULL.  Sites come out in address order.
 */
long gk_plan_scan(const struct gk_text *text,
                  const uint64_t *extra_targets, size_t n_extra,
                  struct gk_site *sites, size_t max_sites,
                  struct gk_scan_stats *stats);

/*
 * The first step of gk_plan_scan alone: every ecall site (ecall ==
 * win_start, win_len 0, sysno -1, no gateway window: gw_len 0, gw_reason
 * GK_OK) and stats without targets.  Enough for sites that will get a
 * GK_PATCH_JAL (which replaces the ecall alone, so no jump target matters):
 * the run-time core starts with this and runs gk_plan_scan only if some
 * site cannot reach a trampoline with jal.  Returns as gk_plan_scan does;
 * the sites are the same, in the same order.
 */
long gk_plan_find(const struct gk_text *text, struct gk_site *sites,
                  size_t max_sites, struct gk_scan_stats *stats);

/*
 * Pick the kind for one site given the trampoline address reserved for it
 * (tramp == 0: none reserved).  GK_PATCH_JAL if |tramp - ecall| < 1 MiB,
 * else GK_PATCH_GATEWAY if scan found a window and |tramp - win_start|
 * < 2 GiB, else GK_PATCH_NONE with a reason.  Updates site->kind/reason/
 * tramp_len.
 */
void gk_plan_assign(struct gk_site *site, uint64_t tramp);

/*
 * Emit the bytes for one assigned site: `patch` receives site->win_len
 * bytes to write at site->win_start, `tramp_out` receives site->tramp_len
 * bytes to write at `tramp`.  `entry` is the vaddr of the shared assembly
 * entry (reached from the trampoline with auipc+jalr, ra saved on stack).
 * `text` must be the same text the site was scanned from (displaced
 * instructions are read from it).  Returns 0, or -1 if the site can't be
 * emitted (then nothing must be written).
 */
int gk_plan_emit(const struct gk_text *text, const struct gk_site *site,
                 uint64_t tramp, uint64_t entry,
                 uint8_t *patch, uint8_t *tramp_out);

/*
 * Trampoline <-> entry convention (both patch kinds end up here):
 *
 *   tramp:  addi sp,sp,-16 ; sd ra,0(sp)        # original ra saved
 *           auipc ra,%hi ; jalr ra,%lo(ra)      # -> gk_entry (shared, asm)
 *   ret0:   ld ra,0(sp) ; addi sp,sp,16         # normal return, a0 = result
 *           <continue after the ecall>
 *   ret1:   ld ra,0(sp) ; addi sp,sp,16         # "do it yourself" return:
 *           ecall                               #   raw ecall, every register
 *           <continue after the ecall>          #   as the program had it
 *
 * gk_entry is entered with every register as at the ecall except ra
 * (= ret0) and sp (lowered by 16, original ra at 0(sp)).  It returns to
 * ra (ret0) with a0 = result, or to ra + GK_TRAMP_RAW_OFFSET (ret1) for
 * calls that must run with no stack use after the kernel returns (vfork,
 * clone with CLONE_VM and no new stack): every register but a0 is then
 * restored first.  Both "continue after the ecall" lines are one 4-byte
 * `jal x0, X` (all instructions here uncompressed, so ret1 = ret0 + 12):
 * X = ecall+4 for GK_PATCH_JAL; for gateways X is a later label in the
 * stub holding the relocated instructions after the ecall and the return
 * into the window's tail.
 */
#define GK_TRAMP_RAW_OFFSET 12   /* bytes from ret0 to ret1 */

/* Upper bound of gk_site.tramp_len, for sizing trampoline slots. */
#define GK_TRAMP_MAX 128

const char *gk_patch_kind_name(int kind);
const char *gk_reason_name(int reason);

#ifdef __cplusplus
}
#endif
#endif
