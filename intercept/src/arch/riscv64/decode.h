/*
 * decode.h - a small RV64GC decoder of our own, just what patch planning
 * needs: the length of every instruction (from the low bits, so vector and
 * unknown extensions still advance correctly), which instructions are
 * pc-relative or change control flow, and which register they write.
 */
#ifndef GKFS_RV_DECODE_H
#define GKFS_RV_DECODE_H

#include <stddef.h>
#include <stdint.h>

enum rv_kind {
	RV_OTHER = 0,   /* not pc-relative, falls through: may be copied as is */
	RV_UNDECODABLE, /* 0x0000 parcel, reserved >= 192-bit length, truncated */
	RV_ECALL,
	RV_AUIPC,       /* rd = pc + imm */
	RV_JAL,         /* rd = pc + 4; pc += imm */
	RV_JALR,        /* indirect: rd = pc + len; pc = rs1 + imm */
	RV_BRANCH,      /* if (rs1 op rs2) pc += imm; funct3 says which op */
	RV_CJ,          /* c.j: pc += imm */
	RV_CBEQZ,       /* if (rs1 == 0) pc += imm */
	RV_CBNEZ,       /* if (rs1 != 0) pc += imm */
	RV_CJR,         /* c.jr / c.jalr: indirect, rd = 0 or ra */
	RV_LI,          /* addi rd, x0, imm / c.li rd, imm (static values) */
};

#define RV_WR_NONE 0xff   /* writes no integer register */
#define RV_WR_ANY  0xfe   /* may write any (unknown encodings): be careful */

struct rv_insn {
	uint8_t len;     /* bytes: 2, 4, 6, 8, 10..22 */
	uint8_t kind;    /* enum rv_kind */
	uint8_t rd, rs1, rs2;
	uint8_t funct3;  /* for RV_BRANCH */
	uint8_t wr;      /* integer register written, RV_WR_NONE / RV_WR_ANY */
	int64_t imm;     /* pc offset for AUIPC/JAL/branches, value for LI, imm for JALR */
};

/* Length in bytes from the first 16-bit parcel; 0 for reserved (>= 192 bit). */
unsigned rv_insn_length(uint16_t parcel);

/*
 * Decode the instruction at p (avail bytes readable).  Always fills *out
 * and returns out->len (>= 2); RV_UNDECODABLE instructions have len 2 so
 * that a linear sweep resynchronises parcel by parcel.
 */
unsigned rv_decode(const uint8_t *p, size_t avail, struct rv_insn *out);

/* Does the instruction have a direct (pc-relative) jump/branch target? */
static inline int rv_has_direct_target(const struct rv_insn *in)
{
	return in->kind == RV_JAL || in->kind == RV_BRANCH || in->kind == RV_CJ ||
	       in->kind == RV_CBEQZ || in->kind == RV_CBNEZ;
}

/* Does control possibly not continue at pc + len? */
static inline int rv_is_control(const struct rv_insn *in)
{
	return rv_has_direct_target(in) || in->kind == RV_JALR || in->kind == RV_CJR;
}

#endif

/*
 * Exported for the host tests (cffi), not used by the patcher:
 * gk_rv_lengths: linear sweep over p, writing each instruction's length
 * (0 marks an undecodable parcel, which advances 2 bytes); returns the count.
 * gk_rv_decode_one: fields of one instruction as
 * {len, kind, rd, rs1, rs2, funct3, wr}, immediate in *imm.
 */
size_t gk_rv_lengths(const uint8_t *p, size_t len, uint8_t *out, size_t max);
void gk_rv_decode_one(const uint8_t *p, size_t avail, uint8_t fields[7], int64_t *imm);
