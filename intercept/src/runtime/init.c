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

#include "runtime.h"

static struct gk_object objs[GK_MAX_OBJS];

static int
want(const struct gk_object *o)
{
	if (o->is_self || o->is_vdso)
		return 0;
	if (o->is_libc || o->is_ldso)
		return 1;
	if (gk_cfg.all_objs)
		return 1;
	return !o->is_main && gk_lib_selected(o->path);
}

/* The page tail after every executable segment of every object can hold
 * trampolines for code within 1 MiB, whether or not that object is
 * itself patched. */
static void
add_tails(const struct gk_object *o)
{
	const ElfW(Phdr) *ph = o->phdr;
	for (int i = 0; i < o->phnum; i++) {
		uint64_t end, pg_end;
		int clash = 0;

		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		end = o->base + ph[i].p_vaddr + ph[i].p_memsz;
		pg_end = (end + 4095) & ~4095UL;
		for (int j = 0; j < o->phnum; j++) {
			uint64_t s = o->base + ph[j].p_vaddr;
			if (j != i && ph[j].p_type == PT_LOAD &&
			    s < pg_end && s + ph[j].p_memsz > end)
				clash = 1;   /* another segment shares the page */
		}
		if (!clash)
			gk_tramp_add_tail(end, pg_end);
	}
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
	n = gk_objects_find(objs, GK_MAX_OBJS);
	gk_tramp_init();
	for (int i = 0; i < n; i++) {
		objs[i].selected = want(&objs[i]);
		if (!objs[i].is_vdso)
			add_tails(&objs[i]);
	}
	for (int i = 0; i < n; i++)
		if (objs[i].selected)
			gk_tramp_claim_around(objs[i].lo, objs[i].hi);
	gk_patch_objects(objs, n);
}
