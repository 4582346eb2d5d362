/*
 * plan_cache.c - per-object plans kept on disk, so that later processes
 * skip the scan and only place and write patches.
 *
 * A plan depends only on the object's bytes (its text, its jump targets)
 * and on the planner, so it is keyed by both: the object's GNU build-id
 * (read from its PT_NOTE in memory, i.e. from what is loaded, not from a
 * file that may have changed since) plus the file's size, mtime and inode,
 * and the build-id of this core.  What is kept: the executable sections
 * (link addresses; saves reading the section headers), the counters for
 * the log, and per site what gk_plan_find or gk_plan_scan said of it.
 * Trampoline addresses are not kept: they depend on this process's
 * address-space layout and are chosen afresh every time.
 *
 * Where: $INTERCEPT_PLAN_CACHE if it is an absolute directory, else
 * $XDG_CACHE_HOME/gkfs/plans, else $HOME/.cache/gkfs/plans;
 * INTERCEPT_PLAN_CACHE=0 turns the cache off.  One file per object and
 * core, <build-id>.<core id>.plan, written to a temporary name and renamed
 * into place, so
 * readers see a whole file or none and concurrent writers do no harm.
 * A file is used only if every check passes: magic, version, both ids,
 * size/mtime/inode, a checksum over the contents, every range inside an
 * executable segment and every site an `ecall` in memory, inside its
 * range.  Anything else is ignored and the plan made (and written) anew.
 *
 * Only raw system calls: this runs before libc is patched, and a path
 * under a gkfs mount prefix must not reach the gkfs hook.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <stddef.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/syscall.h>

#include "runtime.h"

#define MAGIC "GKFSPLN1"
#define VERSION 1
#define ID_MAX 32

struct file_range {
	uint64_t start, end;       /* link addresses */
	uint32_t first, n, full, pad;
};

struct header {
	char magic[8];
	uint32_t version, id_len, core_id_len, nrange;
	uint8_t id[ID_MAX], core_id[ID_MAX];
	uint64_t size, mtime_sec, mtime_nsec, ino;
	uint64_t insns, targets, nsites;
	int32_t pads_unknown, pad;
	struct file_range range[GK_MAX_TEXT];
};

_Static_assert(sizeof(((struct gk_object_id *)0)->id) == ID_MAX, "one build-id size");
static uint8_t core_id[ID_MAX];
static uint32_t core_id_len;
static char dir[512];             /* "" when the cache is off */
static size_t dir_root;           /* dir[0..dir_root) exists already */

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* The NT_GNU_BUILD_ID note of a loaded object; its length or 0. */
static uint32_t
build_id(const struct gk_object *o, uint8_t *out)
{
	const ElfW(Phdr) *ph = o->phdr;

	for (int i = 0; i < o->phnum; i++) {
		const uint8_t *p, *end;
		if (ph[i].p_type != PT_NOTE)
			continue;
		p = (const uint8_t *)(uintptr_t)(o->base + ph[i].p_vaddr);
		end = p + ph[i].p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const void *)p;
			const uint8_t *name = p + sizeof(*nh);
			const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
			const uint8_t *next = desc + ((nh->n_descsz + 3) & ~3u);
			uint32_t gnu = 0;

			/* tests or'ed: every start reads three build-ids */
			if ((next > end) | (next <= p))
				break;
			if (nh->n_namesz == 4)   /* then inside the note */
				memcpy(&gnu, name, 4);
			if ((nh->n_type == NT_GNU_BUILD_ID) & (nh->n_namesz == 4) &
			    (gnu == *(const uint32_t *)(const void *)"GNU") &
			    (nh->n_descsz - 1u < ID_MAX)) {
				gk_copy_bytes(out, desc, nh->n_descsz);   /* string.c: why */
				return nh->n_descsz;
			}
			p = next;
		}
	}
	return 0;
}

/* s after buf[0..*n), NUL-terminated; -1 if it does not fit (buf then
 * holds what did, which no caller uses).  One byte loop, not inlined:
 * every start builds the cache directory and the process image's path
 * with it, and strlen + memcpy + the length test at each of its five
 * call sites were some 15 blocks an emulator translates. */
static __attribute__((noinline)) int
append(char *buf, size_t cap, size_t *n, const char *s)
{
	size_t i = *n;

	while ((*s != '\0') & (i + 1 < cap))
		buf[i++] = *s++;
	buf[i] = '\0';
	*n = i;
	return *s != '\0' ? -1 : 0;
}

/* mkdir -p for the part of `path` after its first `root_len` bytes (which
 * must exist already, or be 0 for the whole path). */
static void
make_dirs(char *path, size_t root_len)
{
	for (char *p = path + root_len + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		GK_RAW(SYS_mkdirat, AT_FDCWD, path, 0700);
		*p = '/';
	}
	GK_RAW(SYS_mkdirat, AT_FDCWD, path, 0700);
}

int
gk_cache_init(const struct gk_object *self)
{
	static const char *const names[] = {
		"INTERCEPT_PLAN_CACHE", "XDG_CACHE_HOME", "HOME",
	};
	const char *v[3] = {0}, *env, *xdg, *home;
	size_t n = 0, root = 0;

	GK_GETENV_ALL(names, v);   /* one pass: see util.c */
	env = v[0];
	xdg = v[1];
	home = v[2];

	dir[0] = '\0';
	if (env && env[0] == '0' && env[1] == '\0')   /* not strcmp: libc's, translated */
		return 0;
	core_id_len = self ? build_id(self, core_id) : 0;
	if (!core_id_len)
		return 0;                 /* no way to tell our planner versions apart */
	if (env && env[0] == '/') {
		if (append(dir, sizeof(dir), &n, env))
			goto off;
		root = 0;
	} else if (xdg && xdg[0] == '/') {
		if (append(dir, sizeof(dir), &n, xdg))
			goto off;
		root = n;
		if (append(dir, sizeof(dir), &n, "/gkfs/plans"))
			goto off;
	} else if (home && home[0] == '/') {
		if (append(dir, sizeof(dir), &n, home))
			goto off;
		root = n;
		if (append(dir, sizeof(dir), &n, "/.cache/gkfs/plans"))
			goto off;
	} else {
		goto off;
	}
	dir_root = root;   /* made at the first store (write_file) */
	return 1;
off:
	dir[0] = '\0';
	return 0;
}

static size_t
hex_bytes(char *out, const uint8_t *b, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[2 * n] = '\0';
	return 2 * n;
}

/* <dir>/<object build-id>.<first 4 bytes of the core's>.plan: two cores
 * (libsyscall_intercept.so, libgkfs_intercept.so) keep a file each rather
 * than replacing each other's. */
static int name_file(const uint8_t *id, uint32_t len, const int64_t *delta,
                     char *out, size_t cap);

static int
file_path(const uint8_t *id, uint32_t len, char *out, size_t cap)
{
	return name_file(id, len, NULL, out, cap);
}

/* <dir>/<id>.<core>.plan, or with delta <dir>/<id>.<core>.<delta>.img */
static int
name_file(const uint8_t *id, uint32_t len, const int64_t *delta, char *out,
          size_t cap)
{
	char name[2 * ID_MAX + 48];
	size_t n = 0, k;

	k = hex_bytes(name, id, len);
	name[k++] = '.';
	k += hex_bytes(name + k, core_id, core_id_len < 4 ? core_id_len : 4);
	if (delta) {
		name[k++] = '.';
		k += hex_bytes(name + k, (const uint8_t *)delta, sizeof(*delta));
		memcpy(name + k, ".img", 5);
	} else {
		memcpy(name + k, ".plan", 6);
	}
	out[0] = '\0';
	if (append(out, cap, &n, dir) || append(out, cap, &n, "/") ||
	    append(out, cap, &n, name))
		return -1;
	return 0;
}

/* Key of an object for this process; -1 if it cannot be cached. */
static int
make_key(const struct gk_object *o, struct header *h)
{
	struct gk_object_id id = { 0 };

	memset(h, 0, sizeof(*h));
	if (!dir[0])
		return -1;
	memcpy(h->magic, MAGIC, 8);
	h->version = VERSION;
	h->core_id_len = core_id_len;
	memcpy(h->core_id, core_id, core_id_len);
	if (gk_cache_object_id(o, &id) != 0)
		return -1;
	h->id_len = id.id_len;
	memcpy(h->id, id.id, sizeof(h->id));
	h->size = id.size;
	h->mtime_sec = id.mtime_sec;
	h->mtime_nsec = id.mtime_nsec;
	h->ino = id.ino;
	return 0;
}

static int
exec_segment_holds(const struct gk_object *o, uint64_t s, uint64_t e)
{
	const ElfW(Phdr) *ph = o->phdr;
	for (int i = 0; i < o->phnum; i++) {
		uint64_t ps = o->base + ph[i].p_vaddr;
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) &&
		    s >= ps && e <= ps + ph[i].p_filesz && s < e)
			return 1;
	}
	return 0;
}

static int
valid(const struct gk_object *o, const struct header *h,
      const struct gk_cached_site *s)
{
	uint64_t total = 0;

	if (h->nrange == 0 || h->nrange > GK_MAX_TEXT)
		return 0;
	for (uint32_t r = 0; r < h->nrange; r++) {
		const struct file_range *fr = &h->range[r];
		uint64_t rs = o->base + fr->start, re = o->base + fr->end;
		if (fr->first != total || fr->n > h->nsites - total ||
		    !exec_segment_holds(o, rs, re))
			return 0;
		for (uint32_t k = fr->first; k < fr->first + fr->n; k++) {
			uint64_t e = o->base + s[k].ecall;
			if (e < rs || e + GK_ARCH_SYSCALL_LEN > re ||
			    (k > fr->first && s[k].ecall <= s[k - 1].ecall) ||
			    !gk_arch_is_syscall_at(e))
				return 0;
			if (s[k].gw_len && (s[k].gw_back > s[k].gw_len ||
			    s[k].gw_back + 4u > s[k].gw_len ||
			    e - s[k].gw_back < rs || e - s[k].gw_back + s[k].gw_len > re ||
			    s[k].gw_tramp_len > GK_TRAMP_MAX))
				return 0;
		}
		total += fr->n;
	}
	return total == h->nsites;
}

int
gk_cache_load(struct gk_object *o, struct gk_cached_plan *p)
{
	struct header want, h;
	char path[640];
	uint64_t sum, want_sum;
	size_t bytes;
	long fd, n;
	int ok = 0;

	if (make_key(o, &want) != 0 || file_path(want.id, want.id_len, path,
	                                         sizeof(path)) != 0)
		return -1;
	fd = GK_RAW(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	n = GK_RAW(SYS_read, fd, &h, sizeof(h));
	/* the key, magic to inode (nrange aside), compared as bytes: one loop
	 * rather than a chain of tests, each a block an emulator translates */
	want.nrange = h.nrange;
	if (n != (long)sizeof(h) ||
	    gk_bytes_differ(&h, &want, offsetof(struct header, insns)) || h.nsites > p->cap)
		goto out;
	bytes = (size_t)h.nsites * sizeof(p->sites[0]);
	if (GK_RAW(SYS_read, fd, p->sites, bytes) != (long)bytes ||
	    GK_RAW(SYS_read, fd, &want_sum, sizeof(want_sum)) != sizeof(want_sum))
		goto out;
	sum = fnv(fnv(0xcbf29ce484222325ULL, &h, sizeof(h)), p->sites, bytes);
	if (sum != want_sum || !valid(o, &h, p->sites))
		goto out;
	p->nsites = (size_t)h.nsites;
	p->nrange = h.nrange;
	p->insns = h.insns;
	p->targets = h.targets;
	p->pads_unknown = h.pads_unknown;
	o->ntext = (int)h.nrange;
	for (uint32_t r = 0; r < h.nrange; r++) {
		p->range[r].first = h.range[r].first;
		p->range[r].n = h.range[r].n;
		p->range[r].full = h.range[r].full != 0;
		o->text[r].start = o->base + h.range[r].start;
		o->text[r].end = o->base + h.range[r].end;
	}
	ok = 1;
out:
	GK_RAW(SYS_close, fd);
	return ok ? 0 : -1;
}

/* path written whole or not at all: <path>.<unique>.tmp, then rename.
 * Unique even among processes of several nodes sharing one home
 * directory, where pids repeat: a hash of the kernel's per-process random
 * bytes (AT_RANDOM; hashed, not shown: glibc takes its stack guard from
 * them), the pid and the time. */
static void
write_file(const char *path, const void *const *part, const size_t *len,
           int nparts)
{
	char tmp[700];
	const uint8_t *rnd;
	struct timespec now = {0, 0};
	uint64_t uniq;
	long fd, pid;
	size_t n;
	int ok = 1;

	static int made;

	if (!made) {
		make_dirs(dir, dir_root);
		made = 1;
	}
	rnd = (const uint8_t *)getauxval(AT_RANDOM);
	GK_RAW(SYS_clock_gettime, CLOCK_REALTIME, &now);
	pid = GK_RAW(SYS_getpid, 0);
	uniq = fnv(0xcbf29ce484222325ULL, &now, sizeof(now));
	uniq = fnv(uniq, &pid, sizeof(pid));
	if (rnd)
		uniq = fnv(uniq, rnd, 16);
	n = 0;
	tmp[0] = '\0';
	if (append(tmp, sizeof(tmp), &n, path) ||
	    append(tmp, sizeof(tmp), &n, ".") || n + 16 + 5 > sizeof(tmp))
		return;
	n += hex_bytes(tmp + n, (const uint8_t *)&uniq, sizeof(uniq));
	if (append(tmp, sizeof(tmp), &n, ".tmp"))
		return;
	fd = GK_RAW(SYS_openat, AT_FDCWD, tmp,
	            O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	for (int i = 0; i < nparts && ok; i++)
		ok = GK_RAW(SYS_write, fd, part[i], len[i]) == (long)len[i];
	ok = GK_RAW(SYS_close, fd) == 0 && ok;
	if (!ok || GK_RAW(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, path, 0) != 0)
		GK_RAW(SYS_unlinkat, AT_FDCWD, tmp, 0);
}

void
gk_cache_store(const struct gk_object *o, const struct gk_cached_plan *p)
{
	struct header h;
	char path[640];
	size_t bytes = p->nsites * sizeof(p->sites[0]);
	uint64_t sum;

	if (make_key(o, &h) != 0 || file_path(h.id, h.id_len, path, sizeof(path)) != 0 ||
	    p->nrange > GK_MAX_TEXT || o->ntext != (int)p->nrange)
		return;
	h.nrange = p->nrange;
	h.insns = p->insns;
	h.targets = p->targets;
	h.nsites = p->nsites;
	h.pads_unknown = p->pads_unknown;
	for (uint32_t r = 0; r < p->nrange; r++) {
		h.range[r].start = o->text[r].start - o->base;
		h.range[r].end = o->text[r].end - o->base;
		h.range[r].first = p->range[r].first;
		h.range[r].n = p->range[r].n;
		h.range[r].full = p->range[r].full;
	}
	sum = fnv(fnv(0xcbf29ce484222325ULL, &h, sizeof(h)), p->sites, bytes);

	{
		const void *part[3] = {&h, p->sites, &sum};
		size_t len[3] = {sizeof(h), bytes, sizeof(sum)};
		write_file(path, part, len, 3);
	}
}

/* --- for the process image (process_image.c) ---------------------------- */

/* An object's identity: its build-id from memory (the bytes loaded) and
 * its file's size, mtime and inode; the plan's key (make_key) and the
 * process image's (one per object, without the rest of a plan header:
 * every start runs this).  id: zeroed by the caller. */
int
gk_cache_object_id(const struct gk_object *o, struct gk_object_id *id)
{
	struct stat st;
	const char *path = o->is_main ? "/proc/self/exe" : o->path;

	id->id_len = build_id(o, id->id);
	if (!id->id_len || GK_RAW(SYS_newfstatat, AT_FDCWD, path, &st, 0) != 0)
		return -1;
	id->size = (uint64_t)st.st_size;
	id->mtime_sec = (uint64_t)st.st_mtim.tv_sec;
	id->mtime_nsec = (uint64_t)st.st_mtim.tv_nsec;
	id->ino = (uint64_t)st.st_ino;
	return 0;
}

const uint8_t *
gk_cache_core_id(uint32_t *len)
{
	*len = core_id_len;
	return core_id;
}

int
gk_cache_path(const char *name, char *out, size_t cap)
{
	size_t n = 0;

	out[0] = '\0';
	if (!dir[0] || append(out, cap, &n, dir) || append(out, cap, &n, "/") ||
	    append(out, cap, &n, name))
		return -1;
	return 0;
}

void
gk_cache_write(const char *path, const void *const *part, const size_t *len,
               int nparts)
{
	write_file(path, part, len, nparts);
}

/* Sites <-> cache records: what the scan said, before any assignment
 * (gk_plan_assign keeps the gw_* fields and sysno intact). */
void
gk_cache_put_site(struct gk_cached_site *c, const struct gk_site *s,
                  uint64_t base)
{
	c->ecall = s->ecall - base;
	c->sysno = s->sysno;
	c->gw_back = s->gw_back;
	c->gw_len = s->gw_len;
	c->gw_tramp_len = s->gw_tramp_len;
	c->gw_reason = s->gw_reason;
}

void
gk_cache_get_site(struct gk_site *s, const struct gk_cached_site *c,
                  uint64_t base)
{
	*s = (struct gk_site){0};   /* every field set: no memset call per site */
	s->ecall = base + c->ecall;
	s->sysno = c->sysno;
	s->gw_back = c->gw_back;
	s->gw_len = c->gw_len;
	s->gw_tramp_len = c->gw_tramp_len;
	s->gw_reason = c->gw_reason;
	if (c->gw_len) {
		s->win_start = s->ecall - c->gw_back;
		s->win_len = c->gw_len;
		s->tramp_len = c->gw_tramp_len;
		s->reason = GK_OK;
	} else {
		s->win_start = s->ecall;
		s->reason = c->gw_reason;
	}
}

/*
 * Patch images: what one patch round wrote for one object (each patched
 * window, its original bytes, its trampoline's bytes), replayed by a
 * later process instead of placing and emitting every site again.  Valid
 * for the same object file, the same core and the same distance between
 * the two (trampolines live in the object's own memory or in this core's,
 * and jump to this core's entry: the bytes depend on nothing else), so the
 * key is the plan's plus that distance, which is in the file name too (a
 * program that loads other libraries places libc elsewhere relative to
 * the core: one image per distance).  The patcher checks the rest (the
 * original bytes are in memory, the trampolines fall where its regions'
 * next free bytes are) before it writes anything.
 */
#define IMG_MAGIC "GKFSIMG1"

struct img_header {
	struct header key;         /* magic IMG_MAGIC; nrange 0 */
	int64_t core_delta;
	uint64_t rela_start, rela_end;
	uint32_t nrec, payload, reuse_rela, pad;
};

static int
image_key(const struct gk_object *o, int64_t core_delta, struct img_header *h,
          char *path, size_t cap)
{
	if (make_key(o, &h->key) != 0)
		return -1;
	memcpy(h->key.magic, IMG_MAGIC, 8);
	h->core_delta = core_delta;
	h->reuse_rela = (uint32_t)gk_cfg.reuse_rela;
	return name_file(h->key.id, h->key.id_len, &core_delta, path, cap);
}

int
gk_image_load(const struct gk_object *o, int64_t core_delta, void *buf,
              size_t cap, struct gk_image *img)
{
	struct img_header want, h;
	struct stat st;
	char path[640];
	uint64_t sum, want_sum = 0;
	size_t recs, total = 0;
	long fd;
	int ok = 0;

	memset(&want, 0, sizeof(want));
	if (image_key(o, core_delta, &want, path, sizeof(path)) != 0)
		return -1;
	fd = GK_RAW(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Checks or'ed together, not a chain of ||: each test of a chain is
	 * a block an emulator translates (util.c, gk_getenv). */
	/* Its bytes become code in this process: only a file of this user
	 * that nobody else may write (a directory shared by mistake, say). */
	long got = GK_RAW(SYS_read, fd, &h, sizeof(h));
	int bad = GK_RAW(SYS_fstat, fd, &st) != 0;
	bad |= st.st_uid != (uid_t)GK_RAW(SYS_geteuid, 0);
	bad |= (st.st_mode & 022) != 0;
	bad |= got != (long)sizeof(h);
	bad |= gk_bytes_differ(&h.key, &want.key, offsetof(struct header, insns));
	bad |= h.core_delta != core_delta;
	bad |= h.reuse_rela != want.reuse_rela;
	bad |= h.nrec > cap / sizeof(struct gk_image_rec);
	bad |= h.rela_end < h.rela_start;
	if (bad)
		goto out;
	recs = (size_t)h.nrec * sizeof(struct gk_image_rec);
	if (h.payload > cap - recs)
		goto out;
	bad |= GK_RAW(SYS_read, fd, buf, recs + h.payload) != (long)(recs + h.payload);
	bad |= GK_RAW(SYS_read, fd, &want_sum, sizeof(want_sum)) != sizeof(want_sum);
	sum = fnv(fnv(0xcbf29ce484222325ULL, &h, sizeof(h)), buf, recs + h.payload);
	img->rec = buf;
	img->payload = (const uint8_t *)buf + recs;
	img->nrec = h.nrec;
	for (uint32_t k = 0; k < h.nrec; k++) {
		const struct gk_image_rec *r = &img->rec[k];
		bad |= r->patch_len - 1u >= GK_IMAGE_PATCH_MAX;   /* 0 too */
		bad |= r->tramp_len > GK_TRAMP_MAX;
		bad |= r->anchor > 1;
		total += 2 * (size_t)r->patch_len + r->tramp_len;
	}
	if (bad || sum != want_sum || total != h.payload)
		goto out;
	img->rela_start = h.rela_start;
	img->rela_end = h.rela_end;
	ok = 1;
out:
	GK_RAW(SYS_close, fd);
	return ok ? 0 : -1;
}

void
gk_image_store(const struct gk_object *o, int64_t core_delta,
               const struct gk_image *img, size_t payload)
{
	struct img_header h;
	char path[640];
	size_t recs = (size_t)img->nrec * sizeof(struct gk_image_rec);
	uint64_t sum;

	memset(&h, 0, sizeof(h));
	if (image_key(o, core_delta, &h, path, sizeof(path)) != 0 ||
	    payload > UINT32_MAX)
		return;
	h.nrec = img->nrec;
	h.payload = (uint32_t)payload;
	h.rela_start = img->rela_start;
	h.rela_end = img->rela_end;
	sum = fnv(fnv(fnv(0xcbf29ce484222325ULL, &h, sizeof(h)), img->rec, recs),
	          img->payload, payload);
	{
		const void *part[4] = {&h, img->rec, img->payload, &sum};
		size_t len[4] = {sizeof(h), recs, payload, sizeof(sum)};
		write_file(path, part, len, 4);
	}
}
