/*
 * emit.c - choosing a site's patch kind for a given trampoline address and
 * writing the patch and trampoline bytes (shapes in layout.h).
 */
#include <string.h>
#include "gkfs_intercept/plan.h"
#include "decode.h"
#include "encode.h"
#include "layout.h"
#include "relocate.h"

/* Slack for the gateway's far reaches: relocated auipc/jal targets lie up
   to 2 MiB from the window, the stub's own auipc up to 128 bytes in. */
#define GW_REACH_SLACK (4ll << 20)

static int jal_tramp_fits(uint64_t ecall, uint64_t tramp)
{
	return rv_jal_fits((int64_t)(tramp - ecall)) &&
	       rv_jal_fits((int64_t)(ecall + 4 - (tramp + 24))) &&
	       rv_jal_fits((int64_t)(ecall + 4 - (tramp + 40)));
}

void gk_plan_assign(struct gk_site *site, uint64_t tramp)
{
	int64_t d = (int64_t)(tramp - site->ecall);
	if (tramp && !(tramp & 3) && jal_tramp_fits(site->ecall, tramp)) {
		site->kind = GK_PATCH_JAL;
		site->reason = GK_OK;
		site->win_start = site->ecall;
		site->win_len = 4;
		site->tramp_len = RV_JAL_TRAMP_LEN;
		return;
	}
	site->kind = GK_PATCH_NONE;
	site->win_start = site->ecall;
	site->win_len = 0;
	site->tramp_len = 0;
	if (site->gw_len == 0) {
		site->reason = site->gw_reason ? site->gw_reason : GK_WINDOW_TOO_SMALL;
		return;
	}
	if (!tramp || (tramp & 3) || d > RV_PCREL_MAX - GW_REACH_SLACK ||
	    d < RV_PCREL_MIN + GW_REACH_SLACK) {
		site->reason = GK_NO_TRAMPOLINE_IN_RANGE;
		return;
	}
	site->kind = GK_PATCH_GATEWAY;
	site->reason = GK_OK;
	site->win_start = site->ecall - site->gw_back;
	site->win_len = site->gw_len;
	site->tramp_len = site->gw_tramp_len;
}

/* auipc rd + jalr link,lo(rd) from pc to target; -1 if out of reach. */
static int far_jump(uint8_t *out, uint64_t pc, uint64_t target, unsigned link)
{
	int64_t d = (int64_t)(target - pc);
	int32_t hi, lo;
	if (!rv_pcrel_fits(d))
		return -1;
	rv_hi_lo(d, &hi, &lo);
	rv_put32(out, rv_auipc(RV_RA, hi));
	rv_put32(out + 4, rv_jalr(link, RV_RA, lo));
	return 0;
}

/* The convention's call block at p (vaddr pc): call gk_entry, ret0, ret1,
   both continuing at `cont`.  44 bytes. */
static int call_block(uint8_t *p, uint64_t pc, uint64_t entry, uint64_t cont)
{
	rv_put32(p, rv_addi(RV_SP, RV_SP, -16));
	rv_put32(p + 4, rv_sd(RV_RA, RV_SP, 0));
	if (far_jump(p + 8, pc + 8, entry, RV_RA))
		return -1;
	/* ret0 */
	rv_put32(p + 16, rv_ld(RV_RA, RV_SP, 0));
	rv_put32(p + 20, rv_addi(RV_SP, RV_SP, 16));
	if (!rv_jal_fits((int64_t)(cont - (pc + 24))) || !rv_jal_fits((int64_t)(cont - (pc + 40))))
		return -1;
	rv_put32(p + 24, rv_jal(0, (int64_t)(cont - (pc + 24))));
	/* ret1 = ret0 + GK_TRAMP_RAW_OFFSET */
	rv_put32(p + 28, rv_ld(RV_RA, RV_SP, 0));
	rv_put32(p + 32, rv_addi(RV_SP, RV_SP, 16));
	rv_put32(p + 36, RV_ECALL_WORD);
	rv_put32(p + 40, rv_jal(0, (int64_t)(cont - (pc + 40))));
	return 0;
}

static int emit_jal(const struct gk_site *s, uint64_t tramp, uint64_t entry,
                    uint8_t *patch, uint8_t *out)
{
	if (!jal_tramp_fits(s->ecall, tramp) || (tramp & 3))
		return -1;
	if (call_block(out, tramp, entry, s->ecall + 4))
		return -1;
	rv_put32(patch, rv_jal(0, (int64_t)(tramp - s->ecall)));
	return 0;
}

/* Relocate the instructions of [from, to) to (*pc, *p); -1 on failure. */
static int relocate_run(const struct gk_text *t, uint64_t from, uint64_t to,
                        const struct rv_win *w, uint64_t *pc, uint8_t **p)
{
	struct rv_insn in;
	uint64_t text_end = t->vaddr + t->len;
	for (uint64_t a = from; a < to; a += in.len) {
		const uint8_t *orig = t->bytes + (a - t->vaddr);
		rv_decode(orig, (size_t)(text_end - a), &in);
		int n = rv_reloc_emit(&in, orig, a, *pc, w, *p);
		if (n < 0)
			return -1;
		*pc += (uint64_t)n;
		*p += n;
	}
	return 0;
}

/* Sum of relocated sizes over [from, to); records far targets in w. */
static int relocated_size(const struct gk_text *t, uint64_t from, uint64_t to,
                          struct rv_win *w)
{
	struct rv_insn in;
	int total = 0;
	uint64_t text_end = t->vaddr + t->len;
	for (uint64_t a = from; a < to; a += in.len) {
		rv_decode(t->bytes + (a - t->vaddr), (size_t)(text_end - a), &in);
		int n = rv_reloc_size(&in, a, w);
		if (n < 0)
			return -1;
		total += n;
	}
	return total;
}

static int emit_gateway(const struct gk_text *t, const struct gk_site *s, uint64_t tramp,
                        uint64_t entry, uint8_t *patch, uint8_t *out)
{
	uint64_t ws = s->win_start, we = ws + s->win_len, ecall = s->ecall;
	if (ws < t->vaddr || we > t->vaddr + t->len || ecall < ws || ecall + 4 > we ||
	    s->win_len < RV_GW_MIN_LEN || (tramp & 3))
		return -1;
	struct rv_win w = { .start = ws, .end = we };
	int pre = relocated_size(t, ws, ecall, &w);
	int post = relocated_size(t, ecall + 4, we, &w);
	if (pre < 0 || post < 0 ||
	    RV_STUB_FIXED + pre + post + RV_STUB_FAR_LEN * (int)w.n_far != s->tramp_len ||
	    s->win_len < RV_GW_MIN_LEN + RV_GW_GADGET_LEN * w.n_far)
		return -1;
	uint64_t reentry = tramp + RV_STUB_UNDO_LEN;
	uint64_t call = reentry + (uint64_t)pre;
	uint64_t after = call + RV_JAL_TRAMP_LEN;
	uint64_t exit = after + (uint64_t)post;
	w.reentry = reentry;
	w.exit = exit;
	for (unsigned k = 0; k < w.n_far; k++)
		w.far_exit[k] = exit + RV_STUB_EXIT_LEN + RV_STUB_FAR_LEN * k;

	/* The stub. */
	uint8_t *p = out;
	p = rv_put32(p, rv_ld(RV_RA, RV_SP, 0));
	p = rv_put32(p, rv_addi(RV_SP, RV_SP, 16));
	uint64_t pc = reentry;
	if (relocate_run(t, ws, ecall, &w, &pc, &p) || pc != call)
		return -1;
	if (call_block(p, call, entry, after))
		return -1;
	p += RV_JAL_TRAMP_LEN;
	pc = after;
	if (relocate_run(t, ecall + 4, we, &w, &pc, &p) || pc != exit)
		return -1;
	p = rv_put32(p, rv_addi(RV_SP, RV_SP, -16));
	p = rv_put32(p, rv_sd(RV_RA, RV_SP, 0));
	if (far_jump(p, exit + 8, we - RV_GW_TAIL_LEN, RV_ZERO))
		return -1;
	p += 8;
	for (unsigned k = 0; k < w.n_far; k++) {
		uint64_t gadget = ws + RV_GW_HEAD_LEN + RV_GW_GADGET_LEN * k;
		p = rv_put32(p, rv_addi(RV_SP, RV_SP, -16));
		p = rv_put32(p, rv_sd(RV_RA, RV_SP, 0));
		if (far_jump(p, w.far_exit[k] + 8, gadget, RV_ZERO))
			return -1;
		p += 8;
	}

	/* The window. */
	uint8_t *q = patch;
	q = rv_put16(q, RV_C_ADDI_SP_M16);
	q = rv_put16(q, RV_C_SDSP_RA_0);
	if (far_jump(q, ws + 4, tramp, RV_RA))
		return -1;
	q += 8;
	for (unsigned k = 0; k < w.n_far; k++) {
		uint64_t jal_pc = ws + RV_GW_HEAD_LEN + RV_GW_GADGET_LEN * k + 4;
		int64_t d = (int64_t)(w.far_target[k] - jal_pc);
		if (!rv_jal_fits(d))
			return -1;
		q = rv_put16(q, RV_C_LDSP_RA_0);
		q = rv_put16(q, RV_C_ADDI_SP_16);
		q = rv_put32(q, rv_jal(RV_ZERO, d));
	}
	while (q < patch + s->win_len - RV_GW_TAIL_LEN)
		q = rv_put16(q, RV_C_NOP);   /* never executed: the stub returns to the tail */
	q = rv_put16(q, RV_C_LDSP_RA_0);
	rv_put16(q, RV_C_ADDI_SP_16);
	return 0;
}

int gk_plan_emit(const struct gk_text *text, const struct gk_site *site,
                 uint64_t tramp, uint64_t entry,
                 uint8_t *patch, uint8_t *tramp_out)
{
	uint8_t pbuf[RV_GW_MAX_LEN], tbuf[GK_TRAMP_MAX];
	int rc;
	if (!text || !site || !patch || !tramp_out || site->tramp_len > GK_TRAMP_MAX ||
	    site->win_len > sizeof pbuf)
		return -1;
	/* Build in local buffers so that nothing is written on failure. */
	if (site->kind == GK_PATCH_JAL && site->win_len == 4 && site->win_start == site->ecall &&
	    site->tramp_len == RV_JAL_TRAMP_LEN)
		rc = emit_jal(site, tramp, entry, pbuf, tbuf);
	else if (site->kind == GK_PATCH_GATEWAY)
		rc = emit_gateway(text, site, tramp, entry, pbuf, tbuf);
	else
		rc = -1;
	if (rc)
		return -1;
	memcpy(patch, pbuf, site->win_len);
	memcpy(tramp_out, tbuf, site->tramp_len);
	return 0;
}
