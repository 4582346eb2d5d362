/*
 * decode.c - RV64GC instruction decoder for patch planning (see decode.h).
 * Written from the RISC-V unprivileged ISA manual's encoding tables.
 */
#include "decode.h"

static inline int64_t sext(uint64_t v, unsigned bits)
{
	uint64_t m = 1ull << (bits - 1);
	v &= (m << 1) - 1;
	return (int64_t)((v ^ m) - m);
}

static inline uint32_t bits(uint32_t v, unsigned hi, unsigned lo)
{
	return (v >> lo) & ((1u << (hi - lo + 1)) - 1);
}

unsigned rv_insn_length(uint16_t parcel)
{
	if ((parcel & 0x3) != 0x3)
		return 2;
	if ((parcel & 0x1c) != 0x1c)
		return 4;
	if ((parcel & 0x3f) == 0x1f)
		return 6;
	if ((parcel & 0x7f) == 0x3f)
		return 8;
	/* xxxxxnnnx1111111: 80 + 16*nnn bits; nnn == 7 is reserved */
	unsigned nnn = (parcel >> 12) & 7;
	return nnn == 7 ? 0 : 10 + 2 * nnn;
}

/* Opcodes whose bits 11:7 are not an integer destination register. */
static int op32_writes_no_xreg(uint32_t opcode)
{
	switch (opcode) {
	case 0x23: /* STORE */
	case 0x27: /* STORE-FP (and vector stores) */
	case 0x63: /* BRANCH */
	case 0x0f: /* MISC-MEM */
	case 0x07: /* LOAD-FP (and vector loads) */
	case 0x43: case 0x47: case 0x4b: case 0x4f: /* fused multiply-add: f rd */
		return 1;
	default:
		return 0;
	}
}

static void decode32(uint32_t w, struct rv_insn *o)
{
	uint32_t opcode = w & 0x7f;
	o->rd = bits(w, 11, 7);
	o->rs1 = bits(w, 19, 15);
	o->rs2 = bits(w, 24, 20);
	o->funct3 = bits(w, 14, 12);
	o->wr = op32_writes_no_xreg(opcode) ? RV_WR_NONE : o->rd;
	switch (opcode) {
	case 0x17: /* AUIPC */
		o->kind = RV_AUIPC;
		o->imm = (int32_t)(w & 0xfffff000u);
		break;
	case 0x6f: /* JAL */
		o->kind = RV_JAL;
		o->imm = sext((bits(w, 31, 31) << 20) | (bits(w, 19, 12) << 12) |
		              (bits(w, 20, 20) << 11) | (bits(w, 30, 21) << 1), 21);
		break;
	case 0x67: /* JALR */
		if (o->funct3 == 0) {
			o->kind = RV_JALR;
			o->imm = (int32_t)w >> 20;
		}
		break;
	case 0x63: /* BRANCH (funct3 010/011 are reserved: treat as other) */
		if (o->funct3 != 2 && o->funct3 != 3) {
			o->kind = RV_BRANCH;
			o->imm = sext((bits(w, 31, 31) << 12) | (bits(w, 7, 7) << 11) |
			              (bits(w, 30, 25) << 5) | (bits(w, 11, 8) << 1), 13);
		}
		break;
	case 0x73:
		if (w == 0x00000073)
			o->kind = RV_ECALL;
		break;
	case 0x13: /* OP-IMM: addi rd, x0, imm is `li` */
		if (o->funct3 == 0 && o->rs1 == 0) {
			o->kind = RV_LI;
			o->imm = (int32_t)w >> 20;
		}
		break;
	}
	if (o->wr == 0)
		o->wr = RV_WR_NONE;   /* x0 is never written */
}

static void decode16(uint16_t h, struct rv_insn *o)
{
	unsigned quad = h & 3, f3 = h >> 13;
	unsigned r117 = bits(h, 11, 7), r62 = bits(h, 6, 2);
	o->wr = RV_WR_NONE;
	if (h == 0) {
		o->kind = RV_UNDECODABLE;   /* the defined illegal instruction */
		return;
	}
	if (quad == 0)
		return; /* loads/stores/addi4spn: rd' is x8..x15, never pc-relative */
	if (quad == 1) {
		switch (f3) {
		case 0: case 1: case 3: /* c.addi, c.addiw, c.lui/c.addi16sp */
			o->rd = o->rs1 = r117;
			o->wr = r117;
			break;
		case 2: /* c.li */
			o->rd = r117;
			o->wr = r117;
			o->kind = RV_LI;
			o->imm = sext((bits(h, 12, 12) << 5) | r62, 6);
			break;
		case 4: /* misc-alu on x8..x15 */
			o->rd = o->rs1 = 8 + bits(h, 9, 7);
			o->wr = o->rd;
			break;
		case 5: /* c.j */
			o->kind = RV_CJ;
			o->imm = sext((bits(h, 12, 12) << 11) | (bits(h, 11, 11) << 4) |
			              (bits(h, 10, 9) << 8) | (bits(h, 8, 8) << 10) |
			              (bits(h, 7, 7) << 6) | (bits(h, 6, 6) << 7) |
			              (bits(h, 5, 3) << 1) | (bits(h, 2, 2) << 5), 12);
			break;
		case 6: case 7: /* c.beqz / c.bnez */
			o->kind = f3 == 6 ? RV_CBEQZ : RV_CBNEZ;
			o->rs1 = 8 + bits(h, 9, 7);
			o->imm = sext((bits(h, 12, 12) << 8) | (bits(h, 11, 10) << 3) |
			              (bits(h, 6, 5) << 6) | (bits(h, 4, 3) << 1) |
			              (bits(h, 2, 2) << 5), 9);
			break;
		}
	} else { /* quad 2 */
		switch (f3) {
		case 0: case 2: case 3: /* c.slli, c.lwsp, c.ldsp */
			o->rd = r117;
			o->wr = r117;
			break;
		case 4:
			o->rs1 = r117;
			o->rs2 = r62;
			if (r62 == 0 && r117 != 0) { /* c.jr / c.jalr */
				o->kind = RV_CJR;
				o->rd = bits(h, 12, 12);   /* c.jalr links to ra */
				o->wr = o->rd ? 1 : RV_WR_NONE;
			} else if (r62 != 0) {          /* c.mv / c.add */
				o->rd = r117;
				o->wr = r117;
			}
			break;
		default: /* fldsp, stores */
			break;
		}
	}
	if (o->wr == 0)
		o->wr = RV_WR_NONE;
}

unsigned rv_decode(const uint8_t *p, size_t avail, struct rv_insn *o)
{
	*o = (struct rv_insn){ .len = 2, .kind = RV_OTHER, .wr = RV_WR_NONE };
	if (avail < 2) {
		o->kind = RV_UNDECODABLE;
		return o->len;
	}
	uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
	unsigned len = rv_insn_length(h);
	if (len == 0 || len > avail) {
		o->kind = RV_UNDECODABLE;   /* reserved length, or cut by text end */
		return o->len;
	}
	o->len = (uint8_t)len;
	if (len == 2) {
		decode16(h, o);
	} else if (len == 4) {
		decode32((uint32_t)p[0] | (uint32_t)p[1] << 8 |
		         (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24, o);
	} else {
		o->wr = RV_WR_ANY;   /* unknown long encodings: assume the worst */
	}
	return o->len;
}

size_t gk_rv_lengths(const uint8_t *p, size_t len, uint8_t *out, size_t max)
{
	struct rv_insn in;
	size_t n = 0;
	for (size_t off = 0; off < len && n < max; off += in.len, n++) {
		rv_decode(p + off, len - off, &in);
		out[n] = in.kind == RV_UNDECODABLE ? 0 : in.len;
	}
	return n;
}

void gk_rv_decode_one(const uint8_t *p, size_t avail, uint8_t f[7], int64_t *imm)
{
	struct rv_insn in;
	rv_decode(p, avail, &in);
	f[0] = in.len; f[1] = in.kind; f[2] = in.rd; f[3] = in.rs1;
	f[4] = in.rs2; f[5] = in.funct3; f[6] = in.wr;
	*imm = in.imm;
}
