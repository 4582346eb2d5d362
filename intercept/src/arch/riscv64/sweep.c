/*
 * sweep.c - the two linear sweeps over riscv64 text, written for speed:
 * they run in every process's constructor (under qemu-user, where each
 * guest instruction of this loop costs several host ones).
 *
 * The full decoder (decode.c) fills a struct per instruction; a sweep needs
 * far less.  Finding system calls needs only each instruction's length
 * (from the low bits of its first parcel) and one compare for `ecall`;
 * finding jump targets needs the immediate of the few control-transfer
 * encodings only, which go through the full decoder.  Both give exactly
 * the instruction boundaries rv_decode() gives (an undecodable parcel
 * advances 2 bytes), so the sweeps, the window code and the host tools
 * agree on every boundary.
 */
#include "../arch_plan.h"
#include "decode.h"

static inline uint16_t parcel(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Length of the instruction at p as rv_decode() sees it, with
 * *undecodable set for the cases it calls RV_UNDECODABLE. */
static inline unsigned step_len(const uint8_t *p, size_t avail, uint16_t h,
                                int *undecodable)
{
	unsigned len;

	if ((h & 3) != 3) {
		*undecodable = h == 0;
		return 2;
	}
	len = (h & 0x1c) != 0x1c ? 4 : rv_insn_length(h);
	if (len == 0 || len > avail) {
		*undecodable = 1;
		return 2;
	}
	*undecodable = 0;
	return len;
}

void gk_arch_sweep_sites(const struct gk_text *t, struct gk_sweep_stats *st,
                         gk_site_fn on_site, void *ctx)
{
	const uint8_t *p = t->bytes;
	size_t len = t->len, off = 0;
	uint64_t back = 0, insns = 0, undecodable = 0, ecalls = 0;

	while (off + 1 < len) {
		uint16_t h = parcel(p + off);
		int und;
		unsigned l;

		back |= 1;   /* bit i: an instruction starts at off - 2*i */
		if ((h & 3) != 3) {                       /* compressed: most common */
			l = 2;
			undecodable += h == 0;
		} else if ((h & 0x1c) != 0x1c && off + 4 <= len) {
			l = 4;
			if (h == 0x0073 && parcel(p + off + 2) == 0) {
				ecalls++;
				on_site(ctx, t->vaddr + off, back);
			}
		} else {
			l = step_len(p + off, len - off, h, &und);
			undecodable += (uint64_t)und;
		}
		insns++;
		off += l;
		back <<= l / 2;
	}
	if (off < len) {   /* one byte left: an undecodable parcel */
		insns++;
		undecodable++;
	}
	st->insns = insns;
	st->undecodable = undecodable;
	st->syscalls = ecalls;
}

uint64_t gk_arch_sweep_targets(const struct gk_text *t, gk_target_fn on_target,
                               void *ctx)
{
	const uint8_t *p = t->bytes;
	size_t len = t->len, off = 0;
	uint64_t direct = 0;

	while (off + 1 < len) {
		uint16_t h = parcel(p + off);
		unsigned l;
		int und, jump;

		if ((h & 3) != 3) {
			unsigned f = h & 0xe003;   /* c.j, c.beqz, c.bnez */
			l = 2;
			jump = f == 0xa001 || f == 0xc001 || f == 0xe001;
		} else {
			l = step_len(p + off, len - off, h, &und);
			jump = l == 4 && ((h & 0x7f) == 0x6f ||
			                  ((h & 0x7f) == 0x63 && ((h >> 13) & 3) != 1));
		}
		if (jump) {
			struct rv_insn in;
			rv_decode(p + off, len - off, &in);
			if (rv_has_direct_target(&in)) {
				direct++;
				on_target(ctx, t->vaddr + off + (uint64_t)in.imm);
			}
		}
		off += l;
	}
	return direct;
}
