/*
 * init.c - the constructor: configure, find objects, patch.
 *
 * Runs before main and, being a dependency of every hook library, before
 * the hook libraries' own constructors; no other thread exists yet.
 * Priority 101 puts it first among the constructors of this object too
 * (libgkfs_intercept.so links the hook into the same object).
 */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

static struct gk_object objs[GK_MAX_OBJS];
static int nobjs;          /* what is loaded as far as we know (objs) */
static int started;        /* the constructor patched (dlopen may follow) */
static int tails_later;    /* a process image was replayed: trampoline
                            * regions are registered at the first refresh */

/* Never the core or the vDSO; libc and ld.so always; the rest by
 * INTERCEPT_ALL_OBJS / INTERCEPT_LIBS.  Tests or'ed, not chained (each
 * test of a chain is a block an emulator translates at every start). */
static int
want(const struct gk_object *o)
{
	int never = o->is_self | o->is_vdso;

	if (never | o->is_libc | o->is_ldso | gk_cfg.all_objs)
		return !never;
	return !o->is_main && gk_lib_selected(o->path);
}

/* The page tail after every executable segment of every object can hold
 * trampolines for code within 1 MiB, whether or not that object is
 * itself patched. */
static void
add_tails(const struct gk_object *o)
{
	struct gk_range t[GK_MAX_TEXT];
	int n = gk_object_tails(o, t, GK_MAX_TEXT);

	for (int i = 0; i < n; i++)
		gk_tramp_add_tail(t[i].start, t[i].end);
}

static void
add_all_tails(void)
{
	gk_tramp_init();
	for (int i = 0; i < nobjs; i++)
		if (!objs[i].is_vdso)
			add_tails(&objs[i]);
}

__attribute__((constructor(101))) static void
gk_init(void)
{
	int n;

	if (gk_config_load() != 0 && !gk_cfg.config_error)
		return;   /* INTERCEPT_HOOK_CMDLINE_FILTER: not this process */
	gk_log_open();
	if (gk_cfg.config_error) {
		gk_log_msg("configuration error: nothing is patched");
		return;
	}
	n = nobjs = gk_objects_find_early(objs, GK_MAX_OBJS);
	for (int i = 0; i < n; i++)
		objs[i].selected = want(&objs[i]);
	/* The whole round from one file (process_image.c), the hook's
	 * declaration with it: no regions, no plans, no per-object images;
	 * the regions only if a dlopen comes. */
	if (gk_pimg_replay(objs, n) == 0) {
		tails_later = 1;
		started = 1;
		return;
	}
	/* (not before the replay: it restores the whole table, and this is
	 * a few blocks every start would translate for nothing) */
	gk_want_init();
	if (gk_hook_declare)
		gk_hook_declare();   /* before patching: see patcher.c */
	add_all_tails();
	/* No holes claimed up front: tails and DT_RELA first, a hole (and
	 * the maps file) only for a site none of them reaches (tramp_mem.c) */
	gk_patch_objects(objs, n);
	started = 1;
}

/* Same object: same place, same program headers, same name. */
static int
same_object(const struct gk_object *a, const struct gk_object *b)
{
	return a->lo == b->lo && a->hi == b->hi && a->phdr == b->phdr &&
	       strcmp(a->path, b->path) == 0;
}

static struct gk_object fresh[GK_MAX_OBJS];
static int refresh_lock;
/* Objects of other namespaces (dlmopen) already patched: never pruned
 * (dl_iterate_phdr shows only the caller's namespace, so a refresh cannot
 * tell one gone). */
static struct gk_object ns_seen[64];
static int n_ns_seen;

/*
 * After dlopen/dlmopen/dlclose (dlopen.c): objects not seen before are
 * patched when selected as at start (INTERCEPT_ALL_OBJS, INTERCEPT_LIBS,
 * and any libc: dlmopen(LM_ID_NEWLM) loads a second one), objects gone
 * are forgotten (an object dlopen'ed later at the same place is new).
 * A new object's constructors have run by then (dlopen returns after
 * them): their own system calls are not seen.  One thread at a time; the
 * planner's buffers are the constructor's.
 */
void
gk_objects_refresh(void *ns_handle)
{
	int n, nbase, nnew = 0;

	if (!started || !gk_cfg.allowed)
		return;
	while (__atomic_exchange_n(&refresh_lock, 1, __ATOMIC_ACQUIRE))
		GK_RAW(SYS_sched_yield, 0);
	if (tails_later) {   /* as the constructor's round would have left them */
		add_all_tails();
		gk_pimg_restore_regions(objs, nobjs);
		tails_later = 0;
	}
	n = nbase = gk_objects_find(fresh, GK_MAX_OBJS);
	if (ns_handle)
		n = gk_objects_of_namespace(ns_handle, fresh, n, GK_MAX_OBJS);
	for (int i = 0; i < n; i++) {
		int known = 0;
		for (int j = 0; j < nobjs && !known && i < nbase; j++)
			known = same_object(&fresh[i], &objs[j]);
		for (int j = 0; j < n_ns_seen && !known && i >= nbase; j++)
			known = same_object(&fresh[i], &ns_seen[j]);
		/* ld.so is one for all namespaces */
		for (int j = 0; j < nbase && !known && i >= nbase; j++)
			known = fresh[i].lo == fresh[j].lo;
		if (i >= nbase && !known && n_ns_seen < 64)
			ns_seen[n_ns_seen++] = fresh[i];
		/* no segment tails of objects loaded now: one may be dlclosed
		 * and its tail unmapped under trampolines others use; memory
		 * we map next to them (below) is never unmapped */
		fresh[i].selected = !known && want(&fresh[i]);
		nnew += fresh[i].selected;
	}
	for (int i = 0; i < n; i++)
		if (fresh[i].selected)
			gk_tramp_claim_around(fresh[i].lo, fresh[i].hi);
	if (nnew)
		gk_patch_objects(fresh, n);
	memcpy(objs, fresh, (size_t)nbase * sizeof(objs[0]));
	nobjs = nbase;
	__atomic_store_n(&refresh_lock, 0, __ATOMIC_RELEASE);
}
