/*
 * runtime.h - internal interfaces of the run-time core (not installed).
 * Everything here is hidden: only the syscall_intercept API is exported.
 */
#ifndef GKFS_RUNTIME_H
#define GKFS_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "gkfs_intercept/plan.h"
#include "arch_runtime.h"   /* the architecture, through this only */

#pragma GCC visibility push(hidden)

/* --- raw system calls (gk_raw6: arch_runtime.h) ------------------------ */
#define GK_RAW(nr, ...) gk_raw_n(nr, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define gk_raw_n(nr, a, b, c, d, e, f, ...) \
	gk_raw6((nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* --- hooks (dispatch.c) ------------------------------------------------- */
typedef int (*gk_api_hook_fn)(long nr, long a0, long a1, long a2, long a3,
                          long a4, long a5, long *result);
/* System calls made while a hook runs (its own, ld.so's for it) reach the
 * kernel, never intercept_hook_point again.  A hook linked into the core
 * (the gkfs client) may set this to see them anyway; it must not recurse
 * into itself (the client only moves its own descriptors there). */
extern gk_api_hook_fn gk_nested_hook;

/* --- configuration from the environment (config.c) -------------------- */
#define GK_MAX_SYSNO 1024
struct gk_config {
	int allowed;               /* INTERCEPT_HOOK_CMDLINE_FILTER matched */
	int reuse_rela;            /* INTERCEPT_REUSE_RELA (default 1) */
	int force_gateway;         /* INTERCEPT_FORCE_GATEWAY (testing) */
	int log_sites;             /* INTERCEPT_LOG_SITES: log every site */
	int all_objs;              /* INTERCEPT_ALL_OBJS */
	int sys_filter;            /* 0 none, 1 include list, -1 exclude list */
	uint8_t sys_bits[GK_MAX_SYSNO / 8]; /* the listed syscall numbers */
	const char *libs;          /* INTERCEPT_LIBS, comma-separated globs */
	int config_error;          /* bad environment: nothing is patched */
};
extern struct gk_config gk_cfg;
int gk_config_load(void);                  /* 0 ok, -1 refused (logged) */
/* The filters allow hooking nr (inline: every intercepted call asks). */
static inline int
gk_sys_hooked(long nr)
{
	int listed;

	if (__builtin_expect(gk_cfg.sys_filter == 0, 1))
		return 1;
	listed = nr >= 0 && nr < GK_MAX_SYSNO &&
	         (gk_cfg.sys_bits[nr / 8] & (1u << (nr % 8)));
	return gk_cfg.sys_filter > 0 ? listed : !listed;
}
int gk_lib_selected(const char *path);     /* INTERCEPT_LIBS matches */

/* --- calls that reach the dispatcher (wanted.c; the tables: arch_runtime.h) */
/* Every call, but those the filters leave unhooked (after config, log). */
void gk_want_init(void);
/* A hook linked into the core declares the calls it acts on: classes[nr]
 * is GK_WANT_NEVER, _ALWAYS, _FD_ARG0, _FD_ARG4 or _FD_KEPT_ARG0 (numbers
 * >= n: never).
 * Ignored with INTERCEPT_LOG; the clone family stays wanted.  Call before
 * other threads run. */
void gk_want_declare(const unsigned char *classes, size_t n);
/* The hook's descriptor fd needs it (on) or no longer does: _FD_ARG calls
 * on it reach the dispatcher (and close: bit GK_FD_KEPT_MARKED).  Mark
 * before the program learns the number. */
void gk_want_fd_mark(long fd, int on);
/* The hook keeps a record of descriptor fd (on) or no longer does, under
 * its own bit (one per owner, below): _FD_KEPT_ARG0 calls (close) on it
 * reach the dispatcher while any bit is set.  Set before the number can
 * be closed, clear when the record goes. */
void gk_want_fd_keep(long fd, unsigned bit, int on);
#define GK_FD_KEPT_MARKED   1   /* gk_want_fd_mark: a gkfs descriptor */
#define GK_FD_KEPT_INTERNAL 2   /* the gkfs client's own (internal_fds.c) */
#define GK_FD_KEPT_DIR      4   /* a kernel directory it remembers (paths.c) */
/* A declaration was made: gk_want holds it. */
extern int gk_want_declared;
/* The classes of numbers below GK_MAX_SYSNO and the flag above as a
 * process image recorded them (after gk_want_init, instead of the
 * hook's declaration: process_image.c). */
void gk_want_restore(const unsigned char *table, int declared);
/* A declared call the hook wants only once it holds some state (the gkfs
 * client: exit_group, from its first descriptor on): quiet, it goes
 * straight to the kernel; woken, it has its declared class again.  Its
 * sites are patched all the same (gk_want_never goes by the declaration).
 * Either may be called at any time, from any thread. */
void gk_want_quiet(long nr);
void gk_want_wake(long nr);
extern unsigned char gk_want_quieted[GK_WANT_NR];   /* declared class + 1 */
/* Calls numbered nr never reach the dispatcher (a static site of it may
 * stay unpatched). */
static inline int
gk_want_never(long nr)
{
	return nr >= 0 && nr < GK_WANT_NR && gk_want[nr] == GK_WANT_NEVER &&
	       !gk_want_quieted[nr];
}
/* Defined by a hook linked into the core (the gkfs client): declares its
 * calls with gk_want_declare before anything is patched. */
void gk_hook_declare(void) __attribute__((weak));

/* getenv without libc's string functions (util.c: why) */
const char *gk_getenv(const char *name);
/* memset(p, 0, n) for an 8-aligned p and n a multiple of 8, and memcpy,
 * as single loops for the start-up path (string.c: why) */
void gk_zero_words(void *p, size_t n);
void gk_copy_bytes(void *dst, const void *src, size_t n);
/* memcmp(a, b, n) != 0, without libc (the start-up path's key and window checks) */
int gk_bytes_differ(const void *a, const void *b, size_t n);
/* vals[k] = gk_getenv(names[k]) for k < n, in one pass; vals NULL on
 * entry (util.c: why) */
void gk_getenv_many(const char *const *names, const char **vals, int n);
/* gk_getenv_many of a whole array of names into an array of values as
 * long (checked when compiled): the count is the arrays', never spelled */
#define GK_GETENV_ALL(names, vals)                                            \
	do {                                                                  \
		_Static_assert(sizeof(names) / sizeof((names)[0]) ==          \
		               sizeof(vals) / sizeof((vals)[0]),              \
		               "one value per name");                         \
		gk_getenv_many((names), (vals),                               \
		               (int)(sizeof(names) / sizeof((names)[0])));     \
	} while (0)

/* --- syscall names (sysnames.c, generated) ----------------------------- */
const char *gk_sysname(long nr);           /* NULL if unknown */
long gk_sysno_by_name(const char *s, size_t len); /* -1 if unknown */

/* --- log (log.c) -------------------------------------------------------- */
struct gk_buf {
	char b[1024];
	size_t n;
};
void gk_buf_str(struct gk_buf *b, const char *s);
void gk_buf_mem(struct gk_buf *b, const char *s, size_t n);
void gk_buf_dec(struct gk_buf *b, long v);
void gk_buf_hex(struct gk_buf *b, unsigned long v);
void gk_log_open(void);
void gk_log_after_fork(void);            /* new process: new per-pid file */
int gk_log_enabled(void);
void gk_log_buf(struct gk_buf *b);         /* appends '\n', one write */
void gk_log_msg(const char *s);            /* one fixed line */
/* One line per syscall; result_known == 0 for calls that do not return
 * here (exit, a successful execve, raw vfork...). */
void gk_log_syscall(long nr, const long *args, long result, int result_known,
                    const char *how);
/* "name(decoded args) = result" (log_decode.c). */
void gk_log_decode(struct gk_buf *b, long nr, const long *args, long result,
                   int result_known);

/* --- loaded objects (objects.c) ---------------------------------------- */
struct gk_range {
	uint64_t start, end;
};
#define GK_MAX_TEXT 8
struct gk_object {
	char path[256];            /* "" for the main program */
	uint64_t base;             /* load bias */
	uint64_t lo, hi;           /* page-rounded extent of all PT_LOADs */
	const void *phdr;          /* ElfW(Phdr)* */
	int phnum;
	const void *dyn;           /* in-memory PT_DYNAMIC */
	int is_self, is_ldso, is_libc, is_vdso, is_main;
	int selected;              /* chosen for patching */
	struct gk_range text[GK_MAX_TEXT]; /* executable sections */
	int ntext;
};
#define GK_MAX_OBJS 256
int gk_objects_find(struct gk_object *objs, int max);
/* Whether [s, e) lies in one executable PT_LOAD segment of o (its file part). */
int gk_object_exec_holds(const struct gk_object *o, uint64_t s, uint64_t e);
/* The same: that segment's index in o's program headers, or -1; and the
 * protection its program header asks for. */
int gk_object_exec_segment(const struct gk_object *o, uint64_t s, uint64_t e);
int gk_object_segment_prot(const struct gk_object *o, int seg);
/* The page tails after o's executable segments that trampolines may use
 * (tramp_mem.c): start rounded up to 4; at most max; the count. */
int gk_object_tails(const struct gk_object *o, struct gk_range *out, int max);
/* The same from the constructor (no other thread: no loader lock). */
int gk_objects_find_early(struct gk_object *objs, int max);
int gk_object_text(struct gk_object *o, const char **why);
int gk_object_rela(const struct gk_object *o, uint64_t *start, uint64_t *end);
/* Jump targets the code does not show, inside [lo, hi), in two steps:
 * gk_object_rela_targets writes the RELATIVE/IRELATIVE relocation addends
 * (DT_RELA, DT_JMPREL) to out[0..n), and must run before DT_RELA is
 * reused for trampolines; gk_object_targets later appends .dynsym
 * function starts and landing pads to out[n..], then sorts all and drops
 * duplicates (returns the count).  *pads_unknown = 1 if the unwind tables
 * could not be read (then gateway windows, which could swallow a landing
 * pad, are refused). */
size_t gk_object_rela_targets(const struct gk_object *o, uint64_t lo,
                              uint64_t hi, uint64_t *out, size_t max);
size_t gk_object_targets(const struct gk_object *o, uint64_t lo, uint64_t hi,
                         uint64_t *out, size_t n, size_t max, int *pads_unknown);
/* Landing pads from PT_GNU_EH_FRAME (eh_targets.c): count or -1. */
long gk_object_landing_pads(const struct gk_object *o, uint64_t lo,
                            uint64_t hi, uint64_t *out, size_t max);

/* After the loaded objects changed (dlopen.c): patch the new ones that
 * are selected (init.c). */
void gk_objects_refresh(void *ns_handle);   /* dlmopen's handle, or NULL */
/* Appends the objects of ns_handle's namespace when it is not the base
 * one (dl_iterate_phdr lists only the caller's); returns the new count. */
int gk_objects_of_namespace(void *ns_handle, struct gk_object *objs, int n,
                            int max);

/* --- trampoline memory (tramp_mem.c) ------------------------------------ */
void gk_tramp_init(void);
void gk_tramp_add_tail(uint64_t start, uint64_t end);
void gk_tramp_note_busy(uint64_t start, uint64_t end);
void gk_tramp_claim_around(uint64_t lo, uint64_t hi);
/* A slot of `need` bytes entirely within `reach` of `near`, or 0. */
uint64_t gk_tramp_reserve(uint64_t near, uint64_t reach, size_t need);
/* Same, but at least `min` away (to test gateways: INTERCEPT_FORCE_GATEWAY) */
uint64_t gk_tramp_reserve_far(uint64_t near, uint64_t min, uint64_t reach,
                              size_t need);
void gk_tramp_commit(uint64_t slot, size_t used);
/* gk_tramp_reserve tries regions inside [lo, hi) first (0, 0: none). */
void gk_tramp_prefer(uint64_t lo, uint64_t hi);
/* ... inside this core's pool first, then inside [lo, hi) (ld.so's sites). */
void gk_tramp_prefer_pool(uint64_t lo, uint64_t hi);
/* A tail region [start, end) takes no more trampolines. */
void gk_tramp_close(uint64_t start, uint64_t end);
/* The region holding [addr, addr + len) (an index below
 * GK_TRAMP_MAX_REGIONS) and its next free byte, or -1. */
#define GK_TRAMP_MAX_REGIONS 128
int gk_tramp_region(uint64_t addr, size_t len, uint64_t *next_free);
/* Region i's bounds and next free byte (i from gk_tramp_region). */
void gk_tramp_region_bounds(int i, uint64_t *start, uint64_t *end, uint64_t *used);
/* [start, end) is the core's own pool, as gk_tramp_init registers it. */
int gk_tramp_is_pool(uint64_t start, uint64_t end);
int gk_tramp_write(uint64_t slot, const uint8_t *bytes, size_t n);
void gk_tramp_seal(void);                   /* all regions become R-X */
void gk_tramp_stats(struct gk_buf *b);

/* --- patching (patcher.c) ----------------------------------------------- */
int gk_patch_objects(struct gk_object *objs, int n);
/* A staged patch: window [addr, addr + len) of objs[obj] gets bytes, its
 * trampoline is [tramp, tramp + tramp_len) (written already). */
struct gk_staged {
	uint64_t addr;
	uint32_t len;
	uint32_t tramp_len;
	uint64_t tramp;
	uint8_t bytes[64];
	uint32_t obj;
};

/* --- the process image (process_image.c) -------------------------------- */
/* The constructor's whole patch round in one file, replayed before any
 * object is planned or its own image read: 0 if done (every selected
 * object patched), -1 if there is none that checks out (nothing was
 * written then). */
int gk_pimg_replay(struct gk_object *objs, int n);
/* Records the constructor's round (staged, trampolines written, windows
 * not yet); scratch: cap bytes of work memory. */
void gk_pimg_store(const struct gk_object *objs, int n,
                   const struct gk_staged *st, size_t nst, void *scratch,
                   size_t cap);
/* After a replay, the trampoline regions it used, for a later round
 * (dlopen): registered and marked used, once the tails are. */
void gk_pimg_restore_regions(const struct gk_object *objs, int n);

/* --- plan cache (plan_cache.c) ------------------------------------------ */
/* One site as the scan left it (gk_plan_find or gk_plan_scan), ecall as a
 * link address; gk_plan_assign's results are not kept. */
struct gk_cached_site {
	uint64_t ecall;
	int32_t sysno;
	uint8_t gw_back, gw_len, gw_tramp_len, gw_reason;
};
struct gk_cached_plan {
	struct gk_cached_site *sites;   /* cap entries of storage */
	size_t nsites, cap;
	uint32_t nrange;                /* == object's ntext */
	struct {
		uint32_t first, n;       /* sites[first .. first + n) */
		uint32_t full;           /* gk_plan_scan (else gk_plan_find) */
	} range[GK_MAX_TEXT];
	uint64_t insns, targets;
	int32_t pads_unknown;
};
/* Reads the environment; 1 if plans are cached (self: this core). */
int gk_cache_init(const struct gk_object *self);
/* 0: plan loaded and checked, o->text/ntext filled from it; -1: none. */
int gk_cache_load(struct gk_object *o, struct gk_cached_plan *p);
void gk_cache_store(const struct gk_object *o, const struct gk_cached_plan *p);
void gk_cache_put_site(struct gk_cached_site *c, const struct gk_site *s,
                       uint64_t base);
void gk_cache_get_site(struct gk_site *s, const struct gk_cached_site *c,
                       uint64_t base);

/* Patch images (plan_cache.c; what they are: there): one record per
 * patched window, its payload orig[patch_len], new[patch_len],
 * tramp[tramp_len] in record order. */
#define GK_IMAGE_PATCH_MAX 64
struct gk_image_rec {
	uint64_t patch_off;        /* window, from the object's base */
	uint64_t tramp_off;        /* trampoline, from the anchor's base */
	uint32_t patch_len, tramp_len;
	uint32_t anchor;           /* 0: the object itself, 1: this core */
	uint32_t pad;
};
struct gk_image {
	const struct gk_image_rec *rec;
	const uint8_t *payload;
	uint32_t nrec;
	uint64_t rela_start, rela_end;   /* DT_RELA region, from base; 0 0: none */
};
/* core_delta: this core's base - the object's.  0 and *img filled from
 * buf (cap bytes), or -1: no usable image. */
int gk_image_load(const struct gk_object *o, int64_t core_delta, void *buf,
                  size_t cap, struct gk_image *img);
void gk_image_store(const struct gk_object *o, int64_t core_delta,
                    const struct gk_image *img, size_t payload);

/* For the process image (process_image.c): an object's identity as the
 * plan's key has it (build-id from memory; the file's size, mtime and
 * inode; id zeroed first), -1 if it has none; this core's build-id; <cache dir>/name
 * (-1: cache off or too long); a file written whole or not at all. */
struct gk_object_id {
	uint8_t id[32];
	uint32_t id_len, pad;
	uint64_t size, mtime_sec, mtime_nsec, ino;
};
int gk_cache_object_id(const struct gk_object *o, struct gk_object_id *id);
const uint8_t *gk_cache_core_id(uint32_t *len);
int gk_cache_path(const char *name, char *out, size_t cap);
void gk_cache_write(const char *path, const void *const *part, const size_t *len,
                    int nparts);

/* --- small helpers (util.c) --------------------------------------------- */
void *gk_map(size_t len);                   /* raw anonymous mapping */
void gk_unmap(void *p, size_t len);
const char *gk_basename(const char *path);
int gk_glob(const char *pat, const char *s, size_t slen);

#pragma GCC visibility pop
#endif
