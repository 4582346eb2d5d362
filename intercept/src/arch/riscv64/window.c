/*
 * window.c - per-site planning on riscv64: the static system call number
 * and the best gateway window around the ecall.
 *
 * A window is a run of whole instructions, 16..32 bytes, holding the ecall,
 * with no jump target inside except at its first byte (a jump to the start
 * re-enters the gateway, which is equivalent), no other ecall, and only
 * instructions relocate.h can move.  Among valid windows the shortest wins,
 * then the smallest stub, then the earliest end (leaves room for a close
 * following site).
 */
#include "../arch_plan.h"
#include "decode.h"
#include "encode.h"
#include "layout.h"
#include "relocate.h"

unsigned gk_arch_insn_len(const uint8_t *p, size_t avail)
{
	struct rv_insn in;
	return rv_decode(p, avail, &in);
}

static const uint8_t *at(const struct gk_text *t, uint64_t addr)
{
	return t->bytes + (addr - t->vaddr);
}

/* Previous instruction start before `cur` per the sweep, or 0. */
static uint64_t prev_start(const struct gk_near *nr, uint64_t ecall, uint64_t cur,
                           uint64_t text_start)
{
	for (uint64_t a = cur - 2; a + 22 >= cur && a >= text_start && a + GK_NEAR_BACK >= ecall; a -= 2)
		if (gk_near_bit(nr->starts, ecall, a))
			return a;
	return 0;
}

/*
 * `li a7, N` earlier in the same basic block, with nothing in between that
 * may write a7 and no jump target between it and the ecall (a7 could then
 * come from elsewhere).  -1 when unknown.
 */
static int32_t static_sysno(const struct gk_text *t, const struct gk_near *nr, uint64_t ecall)
{
	uint64_t cur = ecall;
	for (;;) {
		if (gk_near_bit(nr->targets, ecall, cur))
			return -1;
		uint64_t p = prev_start(nr, ecall, cur, t->vaddr);
		if (!p)
			return -1;
		struct rv_insn in;
		rv_decode(at(t, p), (size_t)(t->vaddr + t->len - p), &in);
		if (p + in.len != cur || rv_is_control(&in) || in.kind == RV_ECALL ||
		    in.kind == RV_UNDECODABLE || in.wr == RV_WR_ANY)
			return -1;
		if (in.wr == 17)
			return in.kind == RV_LI ? (int32_t)in.imm : -1;
		cur = p;
	}
}

struct cand {
	int ok;
	uint8_t reason;
	uint32_t len, stub;
	uint64_t end;
};

/* Judge the window [s, e) (e an instruction boundary past the ecall). */
static struct cand judge(const struct gk_text *t, const struct gk_near *nr,
                         uint64_t ecall, uint64_t s, uint64_t e)
{
	struct cand c = { .len = (uint32_t)(e - s), .end = e, .stub = RV_STUB_FIXED };
	struct rv_insn in;
	struct rv_win w = { .start = s, .end = e };
	uint64_t text_end = t->vaddr + t->len;
	for (uint64_t a = s; a < e; a += in.len) {
		if (a != s && gk_near_bit(nr->targets, ecall, a)) {
			c.reason = GK_WINDOW_HAS_TARGET;
			return c;
		}
		rv_decode(at(t, a), (size_t)(text_end - a), &in);
		if (a == ecall)
			continue;
		int sz = rv_reloc_size(&in, a, &w);
		if (sz < 0) {
			c.reason = GK_WINDOW_UNRELOCATABLE;
			return c;
		}
		c.stub += (uint32_t)sz;
	}
	/* Far targets need a gadget each in the window, reaching by jal. */
	if (c.len < RV_GW_MIN_LEN + RV_GW_GADGET_LEN * w.n_far) {
		c.reason = GK_WINDOW_TOO_SMALL;
		return c;
	}
	for (unsigned k = 0; k < w.n_far; k++) {
		uint64_t jal_pc = s + RV_GW_HEAD_LEN + RV_GW_GADGET_LEN * k + 4;
		if (!rv_jal_fits((int64_t)(w.far_target[k] - jal_pc))) {
			c.reason = GK_WINDOW_UNRELOCATABLE;
			return c;
		}
	}
	c.stub += RV_STUB_FAR_LEN * w.n_far;
	c.ok = c.stub <= GK_TRAMP_MAX;
	c.reason = c.ok ? GK_OK : GK_WINDOW_UNRELOCATABLE;
	return c;
}

/* Best window starting at s: every end from 16 bytes (and past the ecall)
   up to the maximum -- a longer window can turn a branch's target into
   the window's end, which needs no gadget. */
static struct cand try_start(const struct gk_text *t, const struct gk_near *nr,
                             uint64_t ecall, uint64_t s, uint64_t hi, int *seen)
{
	struct cand best = { .reason = GK_WINDOW_TOO_SMALL };
	struct rv_insn in;
	uint64_t a = s, text_end = t->vaddr + t->len;
	while (a < text_end && a < hi) {
		rv_decode(at(t, a), (size_t)(text_end - a), &in);
		a += in.len;
		if (a - s > RV_GW_MAX_LEN || a > hi)
			break;
		if (a - s < RV_GW_MIN_LEN || a < ecall + 4)
			continue;
		struct cand c = judge(t, nr, ecall, s, a);
		*seen |= 1 << c.reason;
		if (c.ok && (!best.ok || c.stub < best.stub))
			best = c;
		if (c.reason == GK_WINDOW_HAS_TARGET)
			break;   /* the target stays inside any longer window */
	}
	return best;
}

static int better(const struct cand *a, const struct cand *b)
{
	if (a->len != b->len)
		return a->len < b->len;
	if (a->stub != b->stub)
		return a->stub < b->stub;
	return a->end < b->end;
}

uint64_t gk_arch_plan_site(const struct gk_text *t, struct gk_site *site,
                           const struct gk_near *nr, uint64_t lo, uint64_t hi)
{
	uint64_t ecall = site->ecall;
	struct cand best = { 0 };
	uint64_t best_start = 0;
	int seen = 0;

	site->sysno = static_sysno(t, nr, ecall);
	for (uint64_t s = ecall; s + (RV_GW_MAX_LEN - 4) >= ecall && s >= lo && s >= t->vaddr; s -= 2) {
		if (s != ecall && !gk_near_bit(nr->starts, ecall, s))
			continue;
		struct cand c = try_start(t, nr, ecall, s, hi, &seen);
		if (c.ok && (!best.ok || better(&c, &best))) {
			best = c;
			best_start = s;
		}
		if (s < 2)
			break;
	}
	if (!best.ok) {
		site->gw_len = 0;
		site->gw_reason = seen & (1 << GK_WINDOW_HAS_TARGET) ? GK_WINDOW_HAS_TARGET :
		                  seen & (1 << GK_WINDOW_UNRELOCATABLE) ? GK_WINDOW_UNRELOCATABLE :
		                  GK_WINDOW_TOO_SMALL;
		site->reason = site->gw_reason;
		site->win_start = ecall;
		site->win_len = 0;
		return ecall + 4;
	}
	site->gw_back = (uint8_t)(ecall - best_start);
	site->gw_len = (uint8_t)best.len;
	site->gw_tramp_len = (uint8_t)best.stub;
	site->gw_reason = GK_OK;
	site->reason = GK_OK;
	site->win_start = best_start;
	site->win_len = best.len;
	site->tramp_len = (uint16_t)best.stub;
	return best.end;
}
