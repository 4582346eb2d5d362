/* relocate.c - see relocate.h for the rules and why they are enough. */
#include <string.h>
#include "relocate.h"
#include "encode.h"

/* Register a far target (or find it); -1 if there are too many. */
static int far_index(struct rv_win *w, uint64_t t)
{
	for (unsigned i = 0; i < w->n_far; i++)
		if (w->far_target[i] == t)
			return (int)i;
	if (w->n_far == RV_MAX_FAR)
		return -1;
	w->far_target[w->n_far] = t;
	return (int)w->n_far++;
}

/* Jumps stay stub-local: edge labels, or a far exit (see relocate.h). */
static int local_jump_size(const struct rv_insn *in, uint64_t pc, struct rv_win *w)
{
	uint64_t t = pc + (uint64_t)in->imm;
	if (t == w->start || t == w->end)
		return 4;
	return far_index(w, t) < 0 ? -1 : 4;
}

int rv_reloc_size(const struct rv_insn *in, uint64_t pc, struct rv_win *w)
{
	switch (in->kind) {
	case RV_OTHER: case RV_LI: case RV_JALR: case RV_CJR:
		return in->len;
	case RV_AUIPC:
		return in->rd == 0 ? in->len : 8;
	case RV_JAL:
		if (in->rd != 0)
			return 8;
		return local_jump_size(in, pc, w);
	case RV_CJ: case RV_BRANCH: case RV_CBEQZ: case RV_CBNEZ:
		return local_jump_size(in, pc, w);
	default: /* undecodable; an ecall other than the site's */
		return -1;
	}
}

/* The stub label standing for a jump's target (0: none). */
static uint64_t edge_label(const struct rv_insn *in, uint64_t pc, const struct rv_win *w)
{
	uint64_t t = pc + (uint64_t)in->imm;
	if (t == w->start)
		return w->reentry;
	if (t == w->end)
		return w->exit;
	for (unsigned i = 0; i < w->n_far; i++)
		if (w->far_target[i] == t)
			return w->far_exit[i];
	return 0;
}

int rv_reloc_emit(const struct rv_insn *in, const uint8_t *orig, uint64_t pc,
                  uint64_t new_pc, const struct rv_win *w, uint8_t *out)
{
	int32_t hi, lo;
	int64_t d;
	switch (in->kind) {
	case RV_AUIPC:
		if (in->rd == 0)
			break;
		d = (int64_t)(pc + (uint64_t)in->imm - new_pc);
		if (!rv_pcrel_fits(d))
			return -1;
		rv_hi_lo(d, &hi, &lo);
		rv_put32(out, rv_auipc(in->rd, hi));
		rv_put32(out + 4, rv_addi(in->rd, in->rd, lo));
		return 8;
	case RV_JAL:
		if (in->rd != 0) {
			d = (int64_t)(pc + (uint64_t)in->imm - new_pc);
			if (!rv_pcrel_fits(d))
				return -1;
			rv_hi_lo(d, &hi, &lo);
			rv_put32(out, rv_auipc(in->rd, hi));
			rv_put32(out + 4, rv_jalr(in->rd, in->rd, lo));
			return 8;
		}
		/* jal x0 to an edge behaves like c.j */
		__attribute__((fallthrough));
	case RV_CJ:
		if (!edge_label(in, pc, w))
			return -1;
		d = (int64_t)(edge_label(in, pc, w) - new_pc);
		if (!rv_jal_fits(d))
			return -1;
		rv_put32(out, rv_jal(0, d));
		return 4;
	case RV_BRANCH: case RV_CBEQZ: case RV_CBNEZ: {
		unsigned f3 = in->kind == RV_BRANCH ? in->funct3 : in->kind == RV_CBEQZ ? 0 : 1;
		unsigned rs2 = in->kind == RV_BRANCH ? in->rs2 : 0;
		if (!edge_label(in, pc, w))
			return -1;
		d = (int64_t)(edge_label(in, pc, w) - new_pc);
		if (!rv_branch_fits(d))
			return -1;
		rv_put32(out, rv_branch(f3, in->rs1, rs2, d));
		return 4;
	}
	case RV_UNDECODABLE: case RV_ECALL:
		return -1;
	default:
		break;
	}
	memcpy(out, orig, in->len);
	return in->len;
}
