/*
 * eh_targets.c - landing pads as jump targets, read from memory.
 *
 * The unwinder enters a function in the middle, at a landing pad (C++
 * catch/cleanup, C __attribute__((cleanup)), pthread cancellation in
 * glibc).  No branch in the text points there, so the scan cannot see it;
 * a gateway window that swallowed a landing pad would send the unwinder
 * into the middle of the patch.  (A jal patch moves nothing, so this only
 * matters for gateways.)
 *
 * Where they are: PT_GNU_EH_FRAME (.eh_frame_hdr) holds a sorted table of
 * every FDE; an FDE whose CIE has an 'L' augmentation carries a pointer to
 * its LSDA (.gcc_except_table), whose call-site table lists the landing
 * pads as offsets from the function start (or an explicit LPStart).
 * That is the same walk the unwinder does, restricted to what we need.
 *
 * Anything we cannot decode makes the caller refuse gateway windows in the
 * object (returns -1): a missed landing pad would be a crash, a refused
 * gateway only a lower coverage.
 */
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "runtime.h"

#define PE_OMIT    0xff
#define PE_PCREL   0x10
#define PE_DATAREL 0x30
#define PE_INDIRECT 0x80

struct rd {
	const uint8_t *p;
	int bad;          /* an encoding we do not handle was met */
};

static uint64_t
uleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned s = 0;
	uint8_t c;

	do {
		c = *r->p++;
		if (s < 64)
			v |= (uint64_t)(c & 0x7f) << s;
		s += 7;
	} while (c & 0x80);
	return v;
}

static int64_t
sleb(struct rd *r)
{
	int64_t v = 0;
	unsigned s = 0;
	uint8_t c;

	do {
		c = *r->p++;
		if (s < 64)
			v |= (int64_t)(c & 0x7f) << s;
		s += 7;
	} while (c & 0x80);
	if (s < 64 && (c & 0x40))
		v |= -((int64_t)1 << s);
	return v;
}

/* One DW_EH_PE-encoded value; `datarel` is the base of 0x30 values (the
 * .eh_frame_hdr start, the only place they occur).  `base` is the load
 * bias when the value is an address: an absolute one is a link address,
 * right only for an object loaded at its link address.  Pass 0 for
 * lengths and offsets. */
static uint64_t
enc_value(struct rd *r, uint8_t enc, uint64_t datarel, uint64_t base)
{
	const uint8_t *at = r->p;
	uint64_t v;

	switch (enc & 0x0f) {
	case 0x00: case 0x04: memcpy(&v, r->p, 8); r->p += 8; break;
	case 0x0c: { int64_t x; memcpy(&x, r->p, 8); v = (uint64_t)x; r->p += 8; break; }
	case 0x03: { uint32_t x; memcpy(&x, r->p, 4); v = x; r->p += 4; break; }
	case 0x0b: { int32_t x; memcpy(&x, r->p, 4); v = (uint64_t)(int64_t)x; r->p += 4; break; }
	case 0x02: { uint16_t x; memcpy(&x, r->p, 2); v = x; r->p += 2; break; }
	case 0x0a: { int16_t x; memcpy(&x, r->p, 2); v = (uint64_t)(int64_t)x; r->p += 2; break; }
	case 0x01: v = uleb(r); break;
	case 0x09: v = (uint64_t)sleb(r); break;
	default: r->bad = 1; return 0;
	}
	switch (enc & 0x70) {
	case 0x00:
		if (base && v)   /* absptr in a relocated object: not ours */
			r->bad = 1;
		break;
	case PE_PCREL: v += (uint64_t)(uintptr_t)at; break;
	case PE_DATAREL: v += datarel; break;
	default: r->bad = 1; return 0;
	}
	if (enc & PE_INDIRECT)   /* a GOT slot: ld.so has filled it */
		v = *(const uint64_t *)(uintptr_t)v;
	return v;
}

/* What of a CIE matters here: the FDE pointer encoding and the LSDA one. */
struct cie {
	const uint8_t *at;
	uint8_t r_enc, l_enc, has_z;
};

static int
parse_cie(const uint8_t *at, struct cie *c)
{
	struct rd r = {.p = at + 8};          /* length, CIE id */
	const char *aug;
	uint8_t version = *r.p++;

	c->at = at;
	c->r_enc = 0;                         /* absptr unless 'R' */
	c->l_enc = PE_OMIT;
	aug = (const char *)r.p;
	r.p += strlen(aug) + 1;
	c->has_z = aug[0] == 'z';
	if (aug[0] && !c->has_z)
		return -1;                        /* "eh" and other old forms */
	uleb(&r);                             /* code alignment */
	sleb(&r);                             /* data alignment */
	if (version == 1)
		r.p++;                            /* return column, a byte */
	else
		uleb(&r);
	if (!c->has_z)
		return 0;
	uleb(&r);                             /* augmentation data length */
	for (const char *a = aug + 1; *a; a++) {
		switch (*a) {
		case 'L': c->l_enc = *r.p++; break;
		case 'R': c->r_enc = *r.p++; break;
		case 'P': { uint8_t e = *r.p++; enc_value(&r, e & 0x7f, 0, 0); break; }
		case 'S': case 'B': break;
		default: return -1;               /* unknown: data order lost */
		}
	}
	return r.bad ? -1 : 0;
}

static size_t
add(uint64_t *out, size_t n, size_t max, uint64_t v, uint64_t lo, uint64_t hi)
{
	if (v >= lo && v < hi && n < max)
		out[n++] = v;
	return n;
}

/* The call-site table of one LSDA: every non-zero landing pad. */
static size_t
lsda_pads(const uint8_t *lsda, uint64_t func, uint64_t base, uint64_t lo,
          uint64_t hi, uint64_t *out, size_t n, size_t max, int *bad)
{
	struct rd r = {.p = lsda};
	uint64_t lpstart = func;
	uint8_t lp_enc = *r.p++, tt_enc, cs_enc;
	const uint8_t *end;
	uint64_t len;

	if (lp_enc != PE_OMIT)
		lpstart = enc_value(&r, lp_enc, 0, base);
	tt_enc = *r.p++;
	if (tt_enc != PE_OMIT)
		uleb(&r);                         /* type table offset */
	cs_enc = *r.p++;
	len = uleb(&r);                       /* counted after itself */
	end = r.p + len;
	while (!r.bad && r.p < end) {
		uint64_t lp;
		enc_value(&r, cs_enc, 0, 0);      /* region start (offset) */
		enc_value(&r, cs_enc, 0, 0);      /* region length */
		lp = enc_value(&r, cs_enc, 0, 0); /* pad, offset from LPStart */
		uleb(&r);                         /* action */
		if (lp)
			n = add(out, n, max, lpstart + lp, lo, hi);
	}
	*bad |= r.bad;
	return n;
}

/* CIEs are few (glibc: a handful) and shared by thousands of FDEs. */
struct cie_cache {
	struct cie c[8];
	int n;
};

static int
cie_for(struct cie_cache *cc, const uint8_t *at, struct cie *out)
{
	for (int i = 0; i < cc->n; i++)
		if (cc->c[i].at == at) {
			*out = cc->c[i];
			return 0;
		}
	if (parse_cie(at, out) != 0)
		return -1;
	if (cc->n < (int)(sizeof(cc->c) / sizeof(cc->c[0])))
		cc->c[cc->n++] = *out;
	return 0;
}

/* Landing pads of object o inside [lo, hi) appended to out (at most max);
 * returns how many, or -1 if the unwind tables could not be read. */
long
gk_object_landing_pads(const struct gk_object *o, uint64_t lo, uint64_t hi,
                       uint64_t *out, size_t max)
{
	const ElfW(Phdr) *ph = o->phdr;
	const uint8_t *hdr = NULL;
	struct cie_cache cc = {.n = 0};
	uint64_t count;
	size_t n = 0;
	int bad = 0;
	struct rd r;

	for (int i = 0; i < o->phnum; i++)
		if (ph[i].p_type == PT_GNU_EH_FRAME)
			hdr = (const uint8_t *)(uintptr_t)(o->base + ph[i].p_vaddr);
	if (!hdr)
		return 0;                 /* no unwind tables: nothing unwinds here */
	/* version 1; eh_frame_ptr, fde_count, table encodings; the binary
	 * search table must be datarel sdata4 (what every linker writes). */
	if (hdr[0] != 1 || hdr[3] != (PE_DATAREL | 0x0b))
		return -1;
	r = (struct rd){.p = hdr + 4};
	enc_value(&r, hdr[1], (uint64_t)(uintptr_t)hdr, o->base);
	count = enc_value(&r, hdr[2], (uint64_t)(uintptr_t)hdr, 0);
	if (r.bad)
		return -1;
	for (uint64_t k = 0; k < count && !bad; k++) {
		int32_t rel[2];
		const uint8_t *fde;
		struct cie c;
		struct rd f;
		uint64_t func, lsda;

		memcpy(rel, r.p + 8 * k, 8);      /* (initial location, FDE) */
		fde = hdr + rel[1];
		if (*(const uint32_t *)fde == 0xffffffffu)
			return -1;                /* 64-bit DWARF: not from gcc/ld */
		if (cie_for(&cc, fde + 4 - *(const uint32_t *)(fde + 4), &c) != 0)
			return -1;
		if (c.l_enc == PE_OMIT)
			continue;                 /* no LSDA in any FDE of this CIE */
		f = (struct rd){.p = fde + 8};
		func = enc_value(&f, c.r_enc, 0, o->base);
		enc_value(&f, c.r_enc & 0x0f, 0, 0);          /* range: a length */
		uleb(&f);                                     /* aug data length */
		lsda = enc_value(&f, c.l_enc, 0, o->base);
		if (f.bad || (lsda && (lsda < o->lo || lsda >= o->hi)))
			return -1;
		if (lsda)
			n = lsda_pads((const uint8_t *)(uintptr_t)lsda, func,
			              o->base, lo, hi, out, n, max, &bad);
	}
	return bad ? -1 : (long)n;
}
