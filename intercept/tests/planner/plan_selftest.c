/*
 * plan_selftest.c - native checks of the riscv64 encoders against the
 * decoder (round trips over the whole reach of every pc-relative form) and
 * of the JAL/gateway shapes on a tiny hand-made text.  Exit 0 on success.
 */
#include <stdio.h>
#include <string.h>
#include "gkfs_intercept/plan.h"
#include "arch/riscv64/decode.h"
#include "arch/riscv64/encode.h"

static int failures;
#define CHECK(c) do { if (!(c)) { failures++; fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); } } while (0)

static void decode_word(uint32_t w, struct rv_insn *in)
{
	uint8_t b[4];
	rv_put32(b, w);
	rv_decode(b, 4, in);
}

static void round_trips(void)
{
	struct rv_insn in;
	for (int64_t d = RV_JAL_MIN; d <= RV_JAL_MAX; d += 2 * 997 + 2 * (d == RV_JAL_MIN)) {
		decode_word(rv_jal(1, d), &in);
		CHECK(in.kind == RV_JAL && in.rd == 1 && in.imm == d);
	}
	decode_word(rv_jal(0, RV_JAL_MAX), &in);
	CHECK(in.imm == RV_JAL_MAX);
	for (int64_t d = RV_BR_MIN; d <= RV_BR_MAX; d += 2) {
		decode_word(rv_branch(5, 10, 11, d), &in);
		CHECK(in.kind == RV_BRANCH && in.funct3 == 5 && in.rs1 == 10 && in.rs2 == 11 && in.imm == d);
	}
	for (int64_t d = RV_PCREL_MIN; d <= RV_PCREL_MAX; d += 0x10001) {
		int32_t hi, lo;
		rv_hi_lo(d, &hi, &lo);
		decode_word(rv_auipc(5, hi), &in);
		CHECK(in.kind == RV_AUIPC && in.imm + lo == d);
	}
	decode_word(rv_addi(17, 0, -5), &in);
	CHECK(in.kind == RV_LI && in.rd == 17 && in.imm == -5 && in.wr == 17);
	decode_word(rv_ld(1, 2, 0), &in);
	CHECK(in.kind == RV_OTHER && in.wr == 1);
	decode_word(rv_sd(1, 2, 0), &in);
	CHECK(in.wr == RV_WR_NONE);
	CHECK(rv_insn_length(0x0001) == 2 && rv_insn_length(0x0073) == 4 &&
	      rv_insn_length(0x001f) == 6 && rv_insn_length(0x003f) == 8 &&
	      rv_insn_length(0x007f) == 10 && rv_insn_length(0x607f) == 22 &&
	      rv_insn_length(0x707f) == 0);
}

/* li a7,64 ; ecall ; ret  -- plus nops around so a gateway window fits */
static void shapes(void)
{
	uint8_t text[64], *p = text;
	for (int i = 0; i < 8; i++) p = rv_put16(p, RV_C_NOP);   /* 0x1000..0x100f */
	p = rv_put16(p, 0x48c5 | 0);                             /* c.li a7,17 */
	p = rv_put32(p, RV_ECALL_WORD);                          /* 0x1012 */
	for (int i = 0; i < 8; i++) p = rv_put16(p, RV_C_NOP);
	p = rv_put16(p, 0x8082);                                 /* ret */
	struct gk_text t = { text, 0x1000, (size_t)(p - text) };
	struct gk_site s;
	struct gk_scan_stats st;
	long n = gk_plan_scan(&t, NULL, 0, &s, 1, &st);
	CHECK(n == 1 && st.ecalls == 1 && st.insns == 19);
	CHECK(s.ecall == 0x1012 && s.sysno == 17 && s.gw_len == 16);
	uint8_t patch[32], tr[GK_TRAMP_MAX];
	gk_plan_assign(&s, 0x2000);
	CHECK(s.kind == GK_PATCH_JAL && s.tramp_len == 44);
	CHECK(gk_plan_emit(&t, &s, 0x2000, 0x3000, patch, tr) == 0);
	struct rv_insn in;
	rv_decode(patch, 4, &in);
	CHECK(in.kind == RV_JAL && in.rd == 0 && 0x1012 + in.imm == 0x2000);
	gk_plan_assign(&s, 0x1000 + (64ll << 20));
	CHECK(s.kind == GK_PATCH_GATEWAY && s.win_len == 16);
	CHECK(gk_plan_emit(&t, &s, 0x1000 + (64ll << 20), 0x3000, patch, tr) == 0);
	gk_plan_assign(&s, 0);
	CHECK(s.kind == GK_PATCH_NONE && s.reason == GK_NO_TRAMPOLINE_IN_RANGE);
}

int main(void)
{
	round_trips();
	shapes();
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	else
		puts("plan_selftest: ok");
	return failures != 0;
}
