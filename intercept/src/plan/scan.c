/*
 * scan.c - the arch-neutral scan: a linear sweep finds every system call
 * instruction, then a second sweep (per batch of sites) records which
 * nearby addresses are instruction starts and jump targets, so that the
 * arch code can shape a patch window around each site.
 *
 * Nothing is allocated: per-site knowledge lives in a fixed batch on the
 * stack, and the text is swept once more per batch (glibc: one batch).
 */
#include <string.h>
#include "arch.h"

#define BATCH 512

struct batch {
	const struct gk_site *sites;
	size_t n;
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

static void mark(struct batch *b, uint64_t addr, int is_target)
{
	if (!b->n || addr & 1)
		return;
	if (addr + GK_NEAR_BACK < b->sites[0].ecall ||
	    addr >= b->sites[b->n - 1].ecall + GK_NEAR_BACK)
		return;
	for (size_t i = first_near(b, addr); i < b->n; i++) {
		uint64_t base = b->sites[i].ecall - GK_NEAR_BACK;
		if (addr < base)
			break;
		uint64_t bit = 1ull << ((addr - base) / 2);
		if (is_target)
			b->near[i].targets |= bit;
		else
			b->near[i].starts |= bit;
	}
}

static void sweep_batch(const struct gk_text *t, struct batch *b,
                        const uint64_t *extra, size_t n_extra)
{
	struct gk_step st;
	memset(b->near, 0, sizeof(b->near[0]) * b->n);
	for (size_t off = 0; off < t->len; off += st.len) {
		uint64_t pc = t->vaddr + off;
		gk_arch_step(t->bytes + off, t->len - off, pc, &st);
		mark(b, pc, 0);
		if (st.has_target)
			mark(b, st.target, 1);
	}
	for (size_t i = 0; i < n_extra; i++)
		mark(b, extra[i], 1);
}

long gk_plan_scan(const struct gk_text *text,
                  const uint64_t *extra_targets, size_t n_extra,
                  struct gk_site *sites, size_t max_sites,
                  struct gk_scan_stats *stats)
{
	struct gk_scan_stats s = { 0 };
	struct gk_step st;
	size_t n = 0;

	if (!text || (!text->bytes && text->len) || (text->vaddr & 1) ||
	    (!sites && max_sites) || (!extra_targets && n_extra))
		return -1;

	/* Sweep 1: find the sites (address order by construction). */
	for (size_t off = 0; off < text->len; off += st.len) {
		uint64_t pc = text->vaddr + off;
		gk_arch_step(text->bytes + off, text->len - off, pc, &st);
		s.insns++;
		s.undecodable += st.undecodable;
		s.targets += st.has_target;
		if (st.is_syscall) {
			s.ecalls++;
			if (n < max_sites) {
				memset(&sites[n], 0, sizeof sites[n]);
				sites[n].ecall = pc;
				sites[n].win_start = pc;
				sites[n].sysno = -1;
				n++;
			}
		}
	}
	s.targets += n_extra;

	/* Sweep 2 per batch, then let the arch shape each site's window in
	   address order so windows never overlap. */
	uint64_t text_end = text->vaddr + text->len;
	uint64_t lo = text->vaddr;
	struct batch b;
	for (size_t first = 0; first < n; first += BATCH) {
		b.sites = sites + first;
		b.n = n - first < BATCH ? n - first : BATCH;
		sweep_batch(text, &b, extra_targets, n_extra);
		for (size_t i = 0; i < b.n; i++) {
			size_t k = first + i;
			uint64_t hi = k + 1 < n ? sites[k + 1].ecall : text_end;
			lo = gk_arch_plan_site(text, &sites[k], &b.near[i], lo, hi);
		}
	}
	if (stats)
		*stats = s;
	return (long)n;
}
