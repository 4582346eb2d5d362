/*
 * patcher.c - plan every ecall of the selected objects, place their
 * trampolines, then write all patches at once.
 *
 * Phases, in this order for a reason:
 *   1. plan + emit every site of every object; trampolines are written
 *      into still non-executable (or not yet reachable) memory;
 *   2. seal the trampoline memory R-X;
 *   3. write the patched windows, one writable interval per segment.
 * Until phase 3 no patched code can run, so a libc call made meanwhile
 * (malloc inside qsort, say) never lands in a half-built trampoline.
 * A site that cannot be patched is counted with its reason, never fatal.
 */
#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "gkfs_intercept/plan.h"
#include "runtime.h"

#define MAX_SITES   (1 << 16)
#define MAX_TARGETS (1 << 18)
#define PEND_BYTES  64
#define JAL_REACH   GK_ARCH_NEAR_REACH
#define GW_REACH    GK_ARCH_FAR_REACH

/* pend[]: struct gk_staged (runtime.h), one window, its new bytes, its
 * trampoline */
_Static_assert(PEND_BYTES == sizeof(((struct gk_staged *)0)->bytes), "runtime.h");

struct obj_stats {
	unsigned long found, kind[4], reason[8], emit_failed, insns, targets;
	unsigned long clone_not_jal, gw_refused;
	unsigned long not_wanted;  /* static number the hook never wants: left */
	int pads_unknown;          /* unwind tables unreadable: no gateways */
	int targets_read;          /* some site needed a full plan */
	int veneer;                /* some trampoline reaches the entry by a veneer */
};

/* Staged patches; grows (pend_room) from a first mapping big enough for
 * glibc's libc and ld.so: a mapping's size costs under qemu-user (per
 * page, at map and unmap), its untouched pages nothing on hardware. */
#define PEND_FIRST 2048
static struct gk_staged *pend;
static size_t npend, pend_cap;

static int
pend_room(void)
{
	struct gk_staged *bigger;

	if (npend < pend_cap)
		return 0;
	if (pend_cap >= MAX_SITES || !(bigger = gk_map(2 * pend_cap * sizeof(*pend))))
		return -1;
	memcpy(bigger, pend, npend * sizeof(*pend));
	gk_unmap(pend, pend_cap * sizeof(*pend));
	pend = bigger;
	pend_cap *= 2;
	return 0;
}

/* With INTERCEPT_FORCE_GATEWAY, clone sites with a static number stay on
 * jal (a conservative choice, and what the tests expect).  A gateway would
 * be vfork-safe too: the stub pops the window's push before the call
 * block, and after the raw ecall its exit re-pushes ra from the register
 * for the window's tail, so a vfork parent needs no stack memory its child
 * could have overwritten (README, "Runtime"). */
static int
is_clone_site(const struct gk_site *s)
{
	return s->sysno == SYS_clone
#ifdef SYS_clone3
	       || s->sysno == SYS_clone3
#endif
	       ;
}

static void
log_stats(const struct gk_object *o, const struct obj_stats *s, int cached)
{
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked */
	b.n = 0;
	unsigned long patched = s->kind[GK_PATCH_JAL] + s->kind[GK_PATCH_GATEWAY] +
	                        s->kind[GK_PATCH_GPOLINE];

	gk_buf_str(&b, "patch ");
	gk_buf_str(&b, o->is_main ? "(main program)" : o->path);
	gk_buf_str(&b, ": ecalls ");
	gk_buf_dec(&b, (long)s->found);
	gk_buf_str(&b, ", patched ");
	gk_buf_dec(&b, (long)patched);
	for (int k = GK_PATCH_JAL; k <= GK_PATCH_GPOLINE; k++) {
		gk_buf_str(&b, k == GK_PATCH_JAL ? " (" : ", ");
		gk_buf_str(&b, gk_patch_kind_name(k));
		gk_buf_str(&b, " ");
		gk_buf_dec(&b, (long)s->kind[k]);
	}
	gk_buf_str(&b, "), left ");
	gk_buf_dec(&b, (long)(s->found - patched));
	for (int r = 1; r < 8; r++) {
		if (!s->reason[r])
			continue;
		gk_buf_str(&b, " ");
		gk_buf_str(&b, gk_reason_name(r));
		gk_buf_str(&b, "=");
		gk_buf_dec(&b, (long)s->reason[r]);
	}
	if (s->not_wanted) {
		gk_buf_str(&b, " not_wanted=");
		gk_buf_dec(&b, (long)s->not_wanted);
	}
	if (s->gw_refused) {
		gk_buf_str(&b, " gateway_refused_unwind_tables=");
		gk_buf_dec(&b, (long)s->gw_refused);
	}
	if (s->clone_not_jal) {
		gk_buf_str(&b, " clone_site_needs_jal=");
		gk_buf_dec(&b, (long)s->clone_not_jal);
	}
	if (s->emit_failed) {
		gk_buf_str(&b, " emit_failed=");
		gk_buf_dec(&b, (long)s->emit_failed);
	}
	gk_buf_str(&b, "; insns ");
	gk_buf_dec(&b, (long)s->insns);
	if (s->targets_read) {
		gk_buf_str(&b, ", jump targets ");
		gk_buf_dec(&b, (long)s->targets);
	} else {
		gk_buf_str(&b, ", jump targets not needed (all jal)");
	}
	if (cached)
		gk_buf_str(&b, cached > 1 ? "; plan from cache, completed" :
		                            "; plan from cache");
	gk_log_buf(&b);
}

/* One line per site: every site left alone (with INTERCEPT_LOG), and
 * every patched one too with INTERCEPT_LOG_SITES=1.  Addresses are link
 * addresses (load bias removed), as `gkfs-ctl patch-report` prints them:
 *   site <object>+0x<ecall>: jal
 *   site <object>+0x<ecall>: gateway window +0x<start> <len>
 *   site <object>+0x<ecall>: left <reason number> <reason> */
static void
log_site(const struct gk_object *o, const struct gk_site *s, const char *left)
{
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked, per site */

	if (!gk_log_enabled() || (!left && !gk_cfg.log_sites))
		return;
	b.n = 0;
	gk_buf_str(&b, "site ");
	gk_buf_str(&b, o->is_main ? "(main program)" : o->path);
	gk_buf_str(&b, "+");
	gk_buf_hex(&b, s->ecall - o->base);
	gk_buf_str(&b, ": ");
	if (left) {
		gk_buf_str(&b, "left ");
		gk_buf_dec(&b, s->kind == GK_PATCH_NONE ? s->reason : 0);
		gk_buf_str(&b, " ");
		gk_buf_str(&b, left);
	} else {
		gk_buf_str(&b, gk_patch_kind_name(s->kind));
		if (s->kind != GK_PATCH_JAL) {
			gk_buf_str(&b, " window +");
			gk_buf_hex(&b, s->win_start - o->base);
			gk_buf_str(&b, " ");
			gk_buf_dec(&b, s->win_len);
		}
	}
	gk_log_buf(&b);
}

static uint64_t entry_for(uint64_t tramp);
static uint32_t cur_obj;   /* index of the object being planned */

static uint64_t
dist(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* Assign, emit and stage one site whose trampoline slot is reserved
 * (tramp == 0: none could be). */
static void
place_site(const struct gk_object *o, const struct gk_text *t,
           struct gk_site *site, uint64_t tramp, struct obj_stats *st)
{
	uint8_t tramp_bytes[GK_TRAMP_MAX];
	struct gk_staged *p;
	uint64_t entry;

	gk_plan_assign(site, tramp);
	if (site->kind == GK_PATCH_NONE) {
		st->reason[site->reason < 8 ? site->reason : 0]++;
		log_site(o, site, gk_reason_name(site->reason));
		return;
	}
	if (site->kind != GK_PATCH_JAL && is_clone_site(site)) {
		st->clone_not_jal++;
		log_site(o, site, "clone_site_needs_jal");
		return;
	}
	if (site->kind == GK_PATCH_GATEWAY && st->pads_unknown) {
		st->gw_refused++;
		log_site(o, site, "gateway_refused_unwind_tables");
		return;
	}
	if (site->win_len > PEND_BYTES || site->tramp_len > GK_TRAMP_MAX ||
	    pend_room() != 0) {
		st->emit_failed++;
		log_site(o, site, "emit_failed");
		return;
	}
	p = &pend[npend];
	/* taken before a veneer is placed (it may come from the same region);
	 * lost if the emit fails */
	gk_tramp_commit(tramp, site->tramp_len);
	if (!(entry = entry_for(tramp)) ||
	    gk_plan_emit(t, site, tramp, entry, p->bytes, tramp_bytes) != 0 ||
	    gk_tramp_write(tramp, tramp_bytes, site->tramp_len) != 0) {
		st->emit_failed++;
		log_site(o, site, "emit_failed");
		return;
	}
	p->addr = site->win_start;
	p->obj = cur_obj;
	p->len = site->win_len;
	p->tramp = tramp;
	p->tramp_len = site->tramp_len;
	st->veneer |= entry != (uint64_t)(uintptr_t)&gk_entry;
	npend++;
	st->kind[site->kind]++;
	log_site(o, site, NULL);
}

/* The entry as seen from a trampoline at tramp: gk_entry itself when the
 * trampoline's auipc+jalr reaches it, else a far veneer near the
 * trampoline (a non-PIE program at 0x10000 is some 256 GiB from the core
 * on riscv64); 0 if there is no memory for one. */
static uint64_t
entry_for(uint64_t tramp)
{
	static uint64_t veneers[64];
	static int nveneers;
	uint64_t entry = (uint64_t)(uintptr_t)&gk_entry, slot, at;
	uint8_t code[GK_ARCH_VENEER_LEN];
	size_t len;

	if (dist(tramp, entry) < GK_ARCH_FAR_REACH)
		return entry;
	for (int i = 0; i < nveneers; i++)
		if (dist(tramp, veneers[i]) < GK_ARCH_FAR_REACH)
			return veneers[i];
	if (nveneers == (int)(sizeof(veneers) / sizeof(veneers[0])))
		return 0;
	slot = gk_tramp_reserve(tramp, GK_ARCH_FAR_REACH / 2,
	                        GK_ARCH_VENEER_LEN + GK_ARCH_VENEER_ALIGN);
	if (!slot)
		return 0;
	at = (slot + GK_ARCH_VENEER_ALIGN - 1) & ~(uint64_t)(GK_ARCH_VENEER_ALIGN - 1);
	len = gk_arch_far_veneer(code, at, (uint64_t)(uintptr_t)&gk_entry_far);
	if (gk_tramp_write(at, code, len) != 0)
		return 0;
	gk_tramp_commit(slot, at - slot + len);
	veneers[nveneers++] = at;
	return at;
}

/* A fully planned site (gk_plan_scan): filters, then a trampoline within
 * jal reach, else one for its gateway window. */
static void
plan_site(const struct gk_object *o, const struct gk_text *t,
          struct gk_site *site, struct obj_stats *st)
{
	uint64_t tramp;

	if (site->sysno >= 0 && !gk_sys_hooked(site->sysno)) {
		site->kind = GK_PATCH_NONE;
		site->reason = GK_FILTERED;
		st->reason[GK_FILTERED]++;
		/* filtered sites are the user's choice: listed only on request */
		if (gk_cfg.log_sites)
			log_site(o, site, gk_reason_name(site->reason));
		return;
	}
	/* a number the hook declared it never wants (wanted.c): the entry
	 * would send it straight back, so the ecall stays the program's */
	if (site->sysno >= 0 && gk_want_never(site->sysno)) {
		site->kind = GK_PATCH_NONE;
		site->reason = GK_FILTERED;
		st->not_wanted++;
		if (gk_cfg.log_sites)
			log_site(o, site, "not_wanted");
		return;
	}
	if (gk_cfg.force_gateway && !is_clone_site(site)) {
		tramp = gk_tramp_reserve_far(site->win_start, GK_ARCH_FORCE_FAR_MIN, GW_REACH,
		                             GK_TRAMP_MAX);
	} else {
		tramp = gk_tramp_reserve(site->ecall, JAL_REACH, GK_TRAMP_MAX);
		if (!tramp && site->win_len)
			tramp = gk_tramp_reserve(site->win_start, GW_REACH,
			                         GK_TRAMP_MAX);
	}
	place_site(o, t, site, tramp, st);
}

/*
 * Jump targets are read, and windows planned, only when some site needs
 * more than a jal: a jal patch replaces the ecall alone, so where it
 * lands does not matter.  Default mode therefore starts with the sites
 * alone (gk_plan_find: one length-only sweep) and switches to the full
 * plan (gk_plan_scan with every target) at the first site with no
 * trampoline in jal reach.  The full plan's sites are the same, in the
 * same order, and the jal ones placed so far are what it would have
 * placed too.  Filters (which need static syscall numbers) and
 * INTERCEPT_FORCE_GATEWAY plan fully from the start.
 */
struct targets {
	uint64_t *buf;
	size_t n;          /* rela addends, then all once `all` */
	int all;
};

static struct gk_cached_plan cplan;   /* storage mapped in gk_patch_objects */

static void
read_all_targets(const struct gk_object *o, struct targets *tg,
                 struct obj_stats *st)
{
	if (tg->all)
		return;
	tg->n = gk_object_targets(o, o->text[0].start, o->text[o->ntext - 1].end,
	                          tg->buf, tg->n, MAX_TARGETS, &st->pads_unknown);
	tg->all = 1;
}

static void
log_skipped(const struct gk_object *o, const char *why)
{
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked */
	b.n = 0;
	gk_buf_str(&b, "patch ");
	gk_buf_str(&b, o->is_main ? "(main program)" : o->path);
	gk_buf_str(&b, ": skipped, ");
	gk_buf_str(&b, why);
	gk_log_buf(&b);
}

/* --- patch images (plan_cache.c: what they are) -------------------------- */

static int images;         /* this round replays and records them */
static int imageable;      /* the object just planned has (or had) an image */
static int round_no;       /* 1: the constructor's; later: after a dlopen */

/* An object loaded by dlopen may go with dlclose, its DT_RELA with it:
 * there its own trampolines only, never a later object's. */
static void
close_rela(uint64_t rs, uint64_t re)
{
	if (round_no > 1 && re)
		gk_tramp_close(rs, re);
}

static int
same_mem(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/*
 * The object's image, if its every window still holds the original bytes
 * and its every trampoline falls exactly on its region's next free bytes
 * (as the placement that recorded it found them): trampolines written and
 * committed, windows staged, as plan_object would have.  Nothing is
 * written unless all of it checks out.  0: done; -1: plan instead.
 */
static int
replay_image(struct gk_object *o, const struct gk_object *self, uint64_t *rs,
             uint64_t *re)
{
	struct gk_image img;
	uint64_t next[GK_TRAMP_MAX_REGIONS];
	uint8_t seen[GK_TRAMP_MAX_REGIONS] = {0};
	const uint8_t *p;
	size_t p0 = npend;

	if (gk_image_load(o, (int64_t)(self->base - o->base), cplan.sites,
	                  cplan.cap * sizeof(*cplan.sites), &img) != 0)
		return -1;
	*rs = *re = 0;
	if (img.rela_end) {   /* the same file: the same DT_RELA (objects.c) */
		*rs = o->base + img.rela_start;
		*re = o->base + img.rela_end;
		gk_tramp_add_tail(*rs, *re);
	}
	p = img.payload;
	for (uint32_t k = 0; k < img.nrec; k++) {
		const struct gk_image_rec *r = &img.rec[k];
		uint64_t at = o->base + r->patch_off, free_at;
		uint64_t tramp = (r->anchor ? self->base : o->base) + r->tramp_off;
		int reg = gk_tramp_region(tramp, r->tramp_len, &free_at);

		if (!gk_object_exec_holds(o, at, at + r->patch_len) ||
		    !same_mem((const uint8_t *)(uintptr_t)at, p, r->patch_len) || reg < 0)
			return -1;
		if (!seen[reg]) {
			seen[reg] = 1;
			next[reg] = free_at;
		}
		if (tramp != next[reg])
			return -1;
		next[reg] = (tramp + r->tramp_len + 3) & ~3UL;
		p += 2 * (size_t)r->patch_len + r->tramp_len;
	}
	p = img.payload;
	for (uint32_t k = 0; k < img.nrec; k++) {
		const struct gk_image_rec *r = &img.rec[k];
		uint64_t tramp = (r->anchor ? self->base : o->base) + r->tramp_off;
		struct gk_staged *q;

		/* a failure here leaves written but unreachable trampolines
		 * (regions are used forwards only); the plan goes on after them */
		gk_tramp_commit(tramp, r->tramp_len);
		if (pend_room() != 0 ||
		    gk_tramp_write(tramp, p + 2 * r->patch_len, r->tramp_len) != 0) {
			npend = p0;
			return -1;
		}
		q = &pend[npend++];
		q->obj = cur_obj;
		q->addr = o->base + r->patch_off;
		q->len = r->patch_len;
		q->tramp = tramp;
		q->tramp_len = r->tramp_len;
		memcpy(q->bytes, p + r->patch_len, r->patch_len);
		p += 2 * (size_t)r->patch_len + r->tramp_len;
	}
	return 0;
}

/* What this round staged for o (pend[p0..npend)), as its image, when
 * every trampoline lies in o's memory or this core's (see plan_cache.c).
 * 0 if it could be (nothing staged included), -1 if not. */
static int
record_image(const struct gk_object *o, const struct gk_object *self,
             size_t p0, uint64_t rs, uint64_t re)
{
	struct gk_image img = {.nrec = (uint32_t)(npend - p0)};
	size_t cap = cplan.cap * sizeof(*cplan.sites), recs, payload = 0;
	struct gk_image_rec *rec = (struct gk_image_rec *)(void *)cplan.sites;
	uint8_t *out;

	recs = (size_t)img.nrec * sizeof(*rec);
	if (!img.nrec)
		return 0;
	if (recs > cap)
		return -1;
	out = (uint8_t *)cplan.sites + recs;
	for (size_t k = p0; k < npend; k++) {
		const struct gk_staged *q = &pend[k];
		struct gk_image_rec *r = &rec[k - p0];
		size_t need = 2 * (size_t)q->len + q->tramp_len;

		if (q->tramp >= o->lo && q->tramp + q->tramp_len <= o->hi) {
			r->anchor = 0;
			r->tramp_off = q->tramp - o->base;
		} else if (q->tramp >= self->lo && q->tramp + q->tramp_len <= self->hi) {
			r->anchor = 1;
			r->tramp_off = q->tramp - self->base;
		} else {
			return -1;   /* a hole or another object's tail */
		}
		if (q->len > GK_IMAGE_PATCH_MAX || need > cap - recs - payload)
			return -1;
		r->patch_off = q->addr - o->base;
		r->patch_len = q->len;
		r->tramp_len = q->tramp_len;
		r->pad = 0;
		memcpy(out + payload, (const void *)(uintptr_t)q->addr, q->len);
		memcpy(out + payload + q->len, q->bytes, q->len);
		memcpy(out + payload + 2 * q->len, (const void *)(uintptr_t)q->tramp,
		       q->tramp_len);
		payload += need;
	}
	img.rec = rec;
	img.payload = out;
	img.rela_start = re ? rs - o->base : 0;
	img.rela_end = re ? re - o->base : 0;
	gk_image_store(o, (int64_t)(self->base - o->base), &img, payload);
	return 0;
}

/* The planner's work buffers, mapped at the first object that is planned
 * (an image needs none). */
static struct gk_site *sites_buf;
static uint64_t *targets_buf;
#define SITES_LEN   (MAX_SITES * sizeof(struct gk_site))
#define TARGETS_LEN (MAX_TARGETS * sizeof(uint64_t))

static void
plan_object(struct gk_object *o, const struct gk_object *self)
{
	struct obj_stats st = {0};
	struct gk_site *sites;
	struct targets tg;
	const char *why = NULL;
	uint64_t rs = 0, re = 0;
	size_t p0 = npend;

	if (images && self && replay_image(o, self, &rs, &re) == 0) {
		close_rela(rs, re);
		return;
	}
	imageable = 0;   /* until record_image says otherwise */
	rs = re = 0;
	if (!sites_buf)
		sites_buf = gk_map(SITES_LEN);
	if (!targets_buf)
		targets_buf = gk_map(TARGETS_LEN);
	if (!sites_buf || !targets_buf) {
		log_skipped(o, "out of memory");
		return;
	}
	sites = sites_buf;
	tg = (struct targets){.buf = targets_buf};
	/* A hook that declared its calls (wanted.c) with the plan cache on:
	 * plan in full (once; later starts read it) so that sites with a
	 * static number it never wants stay unpatched. */
	int lazy = !gk_cfg.force_gateway && !gk_cfg.sys_filter &&
	           !(gk_want_declared && cplan.sites);
	int cached = cplan.sites && gk_cache_load(o, &cplan) == 0;
	int store = cplan.sites && !cached;
	size_t nstored = 0;
	int any_full = 0;

	if (!cached && gk_object_text(o, &why) != 0) {
		log_skipped(o, why);
		return;
	}
	/* Its own regions first (its image then depends on no other object's
	 * place); ld.so the core's pool, when in reach: the pool is made for
	 * its few sites, and ld.so's own tail and DT_RELA share pages with
	 * its code, which runs throughout (each page made writable is one
	 * more interval to open, and under qemu-user loses its translations). */
	if (o->is_ldso)
		gk_tramp_prefer_pool(o->lo, o->hi);
	else
		gk_tramp_prefer(o->lo, o->hi);
	/* The relocation addends first: DT_RELA may hold trampolines next.
	 * A cached full plan needs no targets at all. */
	int all_full = cached;
	for (uint32_t r = 0; cached && r < cplan.nrange; r++)
		all_full &= cplan.range[r].full != 0;
	if (!all_full)
		tg.n = gk_object_rela_targets(o, o->text[0].start,
		                              o->text[o->ntext - 1].end, tg.buf,
		                              MAX_TARGETS);
	if (cached) {
		st.insns = cplan.insns;
		st.targets = cplan.targets;
		st.pads_unknown = cplan.pads_unknown;
	}
	if (gk_cfg.reuse_rela && gk_object_rela(o, &rs, &re) == 0)
		gk_tramp_add_tail(rs, re);
	else
		re = 0;
	for (int i = 0; i < o->ntext; i++) {
		struct gk_text t = {
			.bytes = (const uint8_t *)(uintptr_t)o->text[i].start,
			.vaddr = o->text[i].start,
			.len = o->text[i].end - o->text[i].start,
		};
		struct gk_scan_stats ss = {0};
		int full;
		long n;

		if (cached && (cplan.range[i].full || lazy)) {
			full = cplan.range[i].full != 0;
			n = cplan.range[i].n;
			for (long k = 0; k < n; k++)
				gk_cache_get_site(&sites[k],
				                  &cplan.sites[cplan.range[i].first + k],
				                  o->base);
		} else {
			full = !lazy;
			if (full)
				read_all_targets(o, &tg, &st);
			n = full ? gk_plan_scan(&t, tg.buf, tg.n, sites, MAX_SITES, &ss)
			         : gk_plan_find(&t, sites, MAX_SITES, &ss);
			if (cached)     /* found-only in the cache, full needed now */
				store = 1;
			else
				st.insns += ss.insns;
			if (full)
				st.targets = ss.targets;
		}
		if (n < 0)
			n = 0;
		st.found += (unsigned long)n;
		for (long k = 0; k < n; k++) {
			uint64_t tramp;

			if (full) {
				plan_site(o, &t, &sites[k], &st);
				continue;
			}
			tramp = gk_tramp_reserve(sites[k].ecall, JAL_REACH, GK_TRAMP_MAX);
			if (tramp) {
				struct gk_site probe = sites[k];
				gk_plan_assign(&probe, tramp);
				if (probe.kind == GK_PATCH_JAL) {
					place_site(o, &t, &sites[k], tramp, &st);
					continue;
				}
			}
			/* This site needs a gateway window: plan this range in
			 * full and go on from the same site. */
			read_all_targets(o, &tg, &st);
			if (gk_plan_scan(&t, tg.buf, tg.n, sites, MAX_SITES, &ss) != n)
				break;   /* cannot happen: same text, same sites */
			full = 1;
			st.targets = ss.targets;
			store = 1;
			plan_site(o, &t, &sites[k], &st);
		}
		any_full |= full;
		/* What the scan said of this range, for the cache. */
		if (cplan.sites && nstored + (size_t)n <= cplan.cap) {
			cplan.range[i].first = (uint32_t)nstored;
			cplan.range[i].n = (uint32_t)n;
			cplan.range[i].full = (uint32_t)full;
			for (long k = 0; k < n; k++)
				gk_cache_put_site(&cplan.sites[nstored + k], &sites[k],
				                  o->base);
			nstored += (size_t)n;
		} else {
			store = 0;
		}
	}
	st.targets_read = any_full;
	if (store) {
		cplan.nsites = nstored;
		cplan.nrange = (uint32_t)o->ntext;
		cplan.insns = st.insns;
		cplan.targets = any_full ? st.targets : 0;
		cplan.pads_unknown = st.pads_unknown;
		gk_cache_store(o, &cplan);
	}
	if (gk_log_enabled())   /* formatting is start-up time too */
		log_stats(o, &st, cached ? 1 + store : 0);
	gk_tramp_prefer(0, 0);
	if (images && self && !st.veneer)
		imageable = record_image(o, self, p0, rs, re) == 0;
	close_rela(rs, re);
}

/* Writes pend[k0..k1) (all inside one segment of protection prot), the
 * pages they touch made writable only meanwhile (RWX, so code in them
 * keeps running). */
static void
write_run(size_t k0, size_t k1, int prot)
{
	uint64_t s = pend[k0].addr & ~4095UL, e = 0;

	for (size_t k = k0; k < k1; k++) {
		uint64_t ke = (pend[k].addr + pend[k].len + 4095) & ~4095UL;
		if (ke > e)
			e = ke;
	}
	if (GK_RAW(SYS_mprotect, s, e - s, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
		gk_log_msg("patch: mprotect failed, pages left alone");
		return;
	}
	for (size_t k = k0; k < k1; k++)
		memcpy((void *)(uintptr_t)pend[k].addr, pend[k].bytes, pend[k].len);
	GK_RAW(SYS_mprotect, s, e - s, prot);
}

/*
 * Phase 3 for one object: per executable segment, runs of patched pages
 * (windows no more than RUN_GAP pages apart) each made writable only
 * while their patches are copied in.  Not the whole segment: a page made
 * writable loses whatever an emulator (qemu-user) translated from it,
 * and code that ran before the patching (ld.so, libc's start-up, the
 * functions this constructor called) would be translated again.
 */
#define RUN_GAP 1
static void
apply_object(const struct gk_object *o)
{
	const ElfW(Phdr) *ph = o->phdr;

	for (int i = 0; i < o->phnum; i++) {
		uint64_t s, e, run_end = 0;
		size_t k0 = 0, k1 = 0;
		int any = 0;

		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		s = (o->base + ph[i].p_vaddr) & ~4095UL;
		e = (o->base + ph[i].p_vaddr + ph[i].p_memsz + 4095) & ~4095UL;
		for (size_t k = 0; k < npend; k++) {
			uint64_t pg, pe;

			if (pend[k].addr < s || pend[k].addr + pend[k].len > e)
				continue;
			pg = pend[k].addr & ~4095UL;
			pe = (pend[k].addr + pend[k].len + 4095) & ~4095UL;
			/* one run: consecutive entries of this segment whose
			 * pages follow within the gap (entries come in address
			 * order per text range; any other order only makes
			 * more runs) */
			if (k1 == k && k1 > k0 && pg >= (pend[k0].addr & ~4095UL) &&
			    pg <= run_end + RUN_GAP * 4096UL) {
				k1 = k + 1;
				if (pe > run_end)
					run_end = pe;
				continue;
			}
			if (k1 > k0)
				write_run(k0, k1, gk_object_segment_prot(o, i));
			k0 = k;
			k1 = k + 1;
			run_end = pe;
			any = 1;
		}
		if (k1 > k0)
			write_run(k0, k1, gk_object_segment_prot(o, i));
		if (any)
			gk_arch_flush_icache(s, e);
	}
}

int
gk_patch_objects(struct gk_object *objs, int n)
{
	const struct gk_object *self = NULL;
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked */

	b.n = 0;
	round_no++;
	pend_cap = PEND_FIRST;
	pend = gk_map(pend_cap * sizeof(*pend));
	npend = 0;
	if (!pend) {
		gk_log_msg("patch: out of memory, nothing patched");
		return -1;
	}
	cplan.sites = NULL;
	for (int i = 0; i < n && !self; i++)
		if (objs[i].is_self)
			self = &objs[i];
	if (self && gk_cache_init(self)) {
		cplan.cap = MAX_SITES;
		cplan.sites = gk_map(cplan.cap * sizeof(*cplan.sites));
	}
	/* Images need the cache, and plans made as without a log or filter
	 * (INTERCEPT_LOG sees every site: the hook's declaration is ignored;
	 * the log also reports each object's plan, which an image skips). */
	images = cplan.sites && !gk_log_enabled() && !gk_cfg.force_gateway &&
	         !gk_cfg.sys_filter;
	int whole = images && round_no == 1;   /* a process image can be recorded */
	for (int i = 0; i < n; i++)
		if (objs[i].selected) {
			cur_obj = (uint32_t)i;
			imageable = 1;
			plan_object(&objs[i], self);
			whole &= imageable;
		}
	/* Every object replayed or recorded an image: the whole round as one
	 * (process_image.c), before the windows are written. */
	if (whole)
		gk_pimg_store(objs, n, pend, npend, cplan.sites,
		              cplan.cap * sizeof(*cplan.sites));
	if (cplan.sites)
		gk_unmap(cplan.sites, cplan.cap * sizeof(*cplan.sites));
	cplan.sites = NULL;
	gk_tramp_seal();
	for (int i = 0; i < n; i++)
		if (objs[i].selected)
			apply_object(&objs[i]);
	if (gk_log_enabled()) {
		gk_tramp_stats(&b);
		gk_log_buf(&b);
	}
	gk_unmap(sites_buf, SITES_LEN);
	gk_unmap(targets_buf, TARGETS_LEN);
	sites_buf = NULL;
	targets_buf = NULL;
	gk_unmap(pend, pend_cap * sizeof(*pend));
	pend = NULL;
	return 0;
}
