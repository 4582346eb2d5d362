/*
 * scan.c - the arch-neutral scan: a linear sweep finds every system call
 * instruction, then a second sweep (per batch of sites) records which
 * nearby addresses are instruction starts and jump targets, so that the
 * arch code can shape a patch window around each site.
 *
 * Nothing is allocated: per-site knowledge lives in a fixed batch on the
 * stack, and the text is swept once more per batch (glibc: one batch), for
 * jump targets only (direct jumps and branches: their targets, and how
 * many there are, for the report).  gk_plan_find stops after the first sweep: a `jal`
 * patch moves nothing, so it needs no more than the ecall's address.
 */
#include <string.h>
#include "arch/arch_plan.h"

#define BATCH 512
/* Coarse filter for `mark`: one bit per bucket of text, set where some
 * site of the batch looks.  Most jump targets are nowhere near a site and
 * leave after one test instead of a binary search. */
#define BUCKETS 32768

struct batch {
	const struct gk_site *sites;
	size_t n;
	uint64_t lo, hi;              /* [first ecall - 64, last ecall + 64) */
	unsigned shift;               /* bucket = (addr - lo) >> shift */
	uint8_t bucket[BUCKETS / 8];
	struct gk_near near[BATCH];
};

/* First site whose window range [ecall-64, ecall+64) may hold addr. */
static size_t first_near(const struct batch *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	uint64_t min_ecall = addr > 63 ? addr - 63 : 0;   /* ecall + 64 > addr */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b->sites[mid].ecall < min_ecall)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void mark_target(void *ctx, uint64_t addr)
{
	struct batch *b = ctx;
	uint64_t k;

	if (addr & 1 || addr < b->lo || addr >= b->hi)
		return;
	k = (addr - b->lo) >> b->shift;
	if (!(b->bucket[k / 8] & (1u << (k % 8))))
		return;
	for (size_t i = first_near(b, addr); i < b->n; i++) {
		uint64_t base = b->sites[i].ecall - GK_NEAR_BACK;
		if (addr < base)
			break;
		b->near[i].targets |= 1ull << ((addr - base) / 2);
	}
}

static void ignore_target(void *ctx, uint64_t addr)
{
	(void)ctx;
	(void)addr;
}

static void batch_init(struct batch *b, const struct gk_site *sites, size_t n)
{
	b->sites = sites;
	b->n = n;
	b->lo = sites[0].ecall > GK_NEAR_BACK ? sites[0].ecall - GK_NEAR_BACK : 0;
	b->hi = sites[n - 1].ecall + GK_NEAR_BACK;
	b->shift = 7;
	while (((b->hi - b->lo) >> b->shift) >= BUCKETS)
		b->shift++;
	memset(b->bucket, 0, sizeof(b->bucket));
	for (size_t i = 0; i < n; i++) {
		uint64_t s = sites[i].ecall - GK_NEAR_BACK;
		if (sites[i].ecall < GK_NEAR_BACK)
			s = 0;
		uint64_t k0 = (s - b->lo) >> b->shift;
		uint64_t k1 = (sites[i].ecall + GK_NEAR_BACK - 1 - b->lo) >> b->shift;
		for (uint64_t k = k0; k <= k1; k++)
			b->bucket[k / 8] |= (uint8_t)(1u << (k % 8));
	}
	memset(b->near, 0, sizeof(b->near[0]) * n);
}

/* Instruction starts around site i: the ones before it from the sweep's
 * record (`back`, kept in win_start until now), the ones after it by
 * stepping on from the ecall, which is where the sweep went too. */
static void site_starts(const struct gk_text *t, struct gk_site *site,
                        struct gk_near *nr, uint64_t back)
{
	uint64_t base = site->ecall - GK_NEAR_BACK;
	uint64_t end = t->vaddr + t->len;

	for (unsigned i = 0; i <= GK_NEAR_BACK / 2; i++)
		if (back >> i & 1)
			nr->starts |= 1ull << (GK_NEAR_BACK / 2 - i);
	for (uint64_t a = site->ecall; a < site->ecall + GK_NEAR_BACK && a < end;
	     a += gk_arch_insn_len(t->bytes + (a - t->vaddr), (size_t)(end - a)))
		nr->starts |= 1ull << ((a - base) / 2);
}

struct found {
	struct gk_site *sites;
	size_t n, max;
};

/* The sweep's `back` record is parked in win_start until site_starts. */
static void on_site(void *ctx, uint64_t pc, uint64_t back)
{
	struct found *f = ctx;
	if (f->n < f->max) {
		memset(&f->sites[f->n], 0, sizeof f->sites[f->n]);
		f->sites[f->n].ecall = pc;
		f->sites[f->n].win_start = back;
		f->sites[f->n].sysno = -1;
		f->n++;
	}
}

static long find_sites(const struct gk_text *text, struct gk_site *sites,
                       size_t max_sites, struct gk_scan_stats *s)
{
	struct found f = { .sites = sites, .max = max_sites };
	struct gk_sweep_stats sw = { 0 };

	gk_arch_sweep_sites(text, &sw, on_site, &f);
	s->insns = sw.insns;
	s->undecodable = sw.undecodable;
	s->ecalls = sw.syscalls;
	return (long)f.n;
}

static int bad_input(const struct gk_text *text, const struct gk_site *sites,
                     size_t max_sites)
{
	return !text || (!text->bytes && text->len) || (text->vaddr & 1) ||
	       (!sites && max_sites);
}

long gk_plan_find(const struct gk_text *text, struct gk_site *sites,
                  size_t max_sites, struct gk_scan_stats *stats)
{
	struct gk_scan_stats s = { 0 };
	long n;

	if (bad_input(text, sites, max_sites))
		return -1;
	n = find_sites(text, sites, (size_t)max_sites, &s);
	for (long k = 0; k < n; k++)
		sites[k].win_start = sites[k].ecall;
	if (stats)
		*stats = s;
	return n;
}

long gk_plan_scan(const struct gk_text *text,
                  const uint64_t *extra_targets, size_t n_extra,
                  struct gk_site *sites, size_t max_sites,
                  struct gk_scan_stats *stats)
{
	struct gk_scan_stats s = { 0 };
	size_t n;

	if (bad_input(text, sites, max_sites) || (!extra_targets && n_extra))
		return -1;
	n = (size_t)find_sites(text, sites, max_sites, &s);
	s.targets = n_extra;

	/* Per batch: what lies around each site, then let the arch shape
	   each site's window in address order so windows never overlap. */
	uint64_t text_end = text->vaddr + text->len;
	uint64_t lo = text->vaddr;
	struct batch b;
	for (size_t first = 0; first < n; first += BATCH) {
		size_t bn = n - first < BATCH ? n - first : BATCH;
		batch_init(&b, sites + first, bn);
		for (size_t i = 0; i < bn; i++) {
			struct gk_site *site = &sites[first + i];
			uint64_t back = site->win_start;
			site->win_start = site->ecall;
			site_starts(text, site, &b.near[i], back);
		}
		uint64_t direct = gk_arch_sweep_targets(text, mark_target, &b);
		if (first == 0)
			s.targets += direct;
		for (size_t i = 0; i < n_extra; i++)
			mark_target(&b, extra_targets[i]);
		for (size_t i = 0; i < bn; i++) {
			size_t k = first + i;
			uint64_t hi = k + 1 < n ? sites[k + 1].ecall : text_end;
			lo = gk_arch_plan_site(text, &sites[k], &b.near[i], lo, hi);
		}
	}
	if (n == 0)   /* for the count alone */
		s.targets += gk_arch_sweep_targets(text, ignore_target, NULL);
	if (stats)
		*stats = s;
	return (long)n;
}
