/*
 * encode.h - the few RV64 instruction encodings the emitter writes, plus
 * reach checks.  Little-endian stores, no alignment assumptions.
 */
#ifndef GKFS_RV_ENCODE_H
#define GKFS_RV_ENCODE_H

#include <stdint.h>

enum { RV_ZERO = 0, RV_RA = 1, RV_SP = 2 };

#define RV_JAL_MIN   (-(1ll << 20))
#define RV_JAL_MAX   ((1ll << 20) - 2)
#define RV_BR_MIN    (-(1ll << 12))
#define RV_BR_MAX    ((1ll << 12) - 2)
/* auipc+addi/jalr reach: hi20 rounded, so [-2^31 - 2^11, 2^31 - 2^11) */
#define RV_PCREL_MIN (-(1ll << 31) - (1ll << 11))
#define RV_PCREL_MAX ((1ll << 31) - (1ll << 11) - 1)

static inline int rv_jal_fits(int64_t d)
{
	return d >= RV_JAL_MIN && d <= RV_JAL_MAX && !(d & 1);
}
static inline int rv_branch_fits(int64_t d)
{
	return d >= RV_BR_MIN && d <= RV_BR_MAX && !(d & 1);
}
static inline int rv_pcrel_fits(int64_t d)
{
	return d >= RV_PCREL_MIN && d <= RV_PCREL_MAX;
}

static inline uint32_t rv_i(uint32_t op, unsigned rd, unsigned f3, unsigned rs1, int32_t imm)
{
	return ((uint32_t)imm << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
static inline uint32_t rv_s(uint32_t op, unsigned f3, unsigned rs1, unsigned rs2, int32_t imm)
{
	uint32_t u = (uint32_t)imm;
	return ((u >> 5 & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
	       ((u & 0x1f) << 7) | op;
}
static inline uint32_t rv_jal(unsigned rd, int64_t off)
{
	uint32_t u = (uint32_t)off;
	return ((u >> 20 & 1) << 31) | ((u >> 1 & 0x3ff) << 21) | ((u >> 11 & 1) << 20) |
	       ((u >> 12 & 0xff) << 12) | (rd << 7) | 0x6f;
}
static inline uint32_t rv_branch(unsigned f3, unsigned rs1, unsigned rs2, int64_t off)
{
	uint32_t u = (uint32_t)off;
	return ((u >> 12 & 1) << 31) | ((u >> 5 & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
	       (f3 << 12) | ((u >> 1 & 0xf) << 8) | ((u >> 11 & 1) << 7) | 0x63;
}
/* Split a pc-relative offset into auipc's hi20 and the signed lo12. */
static inline void rv_hi_lo(int64_t off, int32_t *hi, int32_t *lo)
{
	int32_t l = (int32_t)((off & 0xfff) ^ 0x800) - 0x800;
	*lo = l;
	*hi = (int32_t)((off - l) >> 12);
}
static inline uint32_t rv_auipc(unsigned rd, int32_t hi20)
{
	return ((uint32_t)hi20 << 12) | (rd << 7) | 0x17;
}
static inline uint32_t rv_jalr(unsigned rd, unsigned rs1, int32_t lo)
{
	return rv_i(0x67, rd, 0, rs1, lo);
}
static inline uint32_t rv_addi(unsigned rd, unsigned rs1, int32_t imm)
{
	return rv_i(0x13, rd, 0, rs1, imm);
}
static inline uint32_t rv_ld(unsigned rd, unsigned rs1, int32_t imm)
{
	return rv_i(0x03, rd, 3, rs1, imm);
}
static inline uint32_t rv_sd(unsigned rs2, unsigned rs1, int32_t imm)
{
	return rv_s(0x23, 3, rs1, rs2, imm);
}

#define RV_ECALL_WORD 0x00000073u
/* Compressed forms used by the gateway window (16 bytes in all). */
#define RV_C_ADDI_SP_M16 0x1141u  /* c.addi sp, -16 */
#define RV_C_ADDI_SP_16  0x0141u  /* c.addi sp, 16 */
#define RV_C_SDSP_RA_0   0xe006u  /* c.sdsp ra, 0(sp) */
#define RV_C_LDSP_RA_0   0x6082u  /* c.ldsp ra, 0(sp) */
#define RV_C_NOP         0x0001u

static inline uint8_t *rv_put32(uint8_t *p, uint32_t w)
{
	p[0] = (uint8_t)w; p[1] = (uint8_t)(w >> 8);
	p[2] = (uint8_t)(w >> 16); p[3] = (uint8_t)(w >> 24);
	return p + 4;
}
static inline uint8_t *rv_put16(uint8_t *p, uint16_t h)
{
	p[0] = (uint8_t)h; p[1] = (uint8_t)(h >> 8);
	return p + 2;
}

#endif
