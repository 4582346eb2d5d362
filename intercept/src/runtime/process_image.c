/*
 * process_image.c - the constructor's whole patch round as one file.
 *
 * Per-object patch images (plan_cache.c) already spare a process the
 * planning; what a start then still pays, under an emulator that
 * translates every block of code before it first runs, is the code
 * around them: two keys and two files, trampoline regions registered and
 * looked up site by site, windows staged and sorted into page runs.  A
 * program started again with the same objects at the same distances from
 * this core writes exactly the same bytes to exactly the same places, so
 * the round is recorded whole (gk_pimg_store, at the end of a round in
 * which every selected object had an image) and replayed by one short
 * path here before anything else is looked at.
 *
 * Key: this core's build-id, INTERCEPT_REUSE_RELA, and every loaded object
 * in link-map order: a hash of its name and whether it is selected, and
 * for a selected one its identity as the plan's key has it (build-id from
 * memory, the file's size, mtime and inode) and its distance from this
 * core.  The main program and the vDSO count only by their place in the
 * list (their addresses move with ASLR; neither holds trampolines of
 * others).  The file name is the key's hash; the key itself is in the file
 * and compared byte for byte.
 *
 * Checks before a byte is written, each one failing the whole image: the
 * file is this user's and nobody else may write it (its bytes become
 * code), its checksum, the key; every window lies in an executable
 * segment of a selected object, inside its page run, and still holds its
 * original bytes; every trampoline region lies inside its object (or this
 * core), as recorded: the key (the same files at the same distances) is
 * what makes its tails, DT_RELA and pool the same, as per-object images
 * trust their DT_RELA.  Only regions the placement itself would take
 * (tails, DT_RELA, the pool) are recorded.  Any failure: the objects' own
 * images or plans are used and this image written anew.
 *
 * The replay is written for few distinct blocks (it is what every start
 * translates): page runs are computed when recording, checks are or'ed.
 *
 * Only raw system calls, no libc: this runs before libc is patched.
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "runtime.h"

#define PIMG_MAGIC "GKFSPRC1"
#define PIMG_VERSION 1
#define PAGE 4096UL
#define MAX_BLOBS 16
#define MAX_WINS (1 << 16)
#define WIN_MAX 64                 /* bytes of one window */
#define ANCHOR_SELF 0xffffffffu

struct pimg_header {
	char magic[8];
	uint32_t version, core_id_len;
	uint8_t core_id[32];
	uint32_t nobj, reuse_rela;
	/* the key ends here */
	uint32_t nblob, nrun, nwin, pad;
	uint64_t payload;          /* bytes after the tables, a multiple of 8 */
};
#define KEY_HEAD offsetof(struct pimg_header, nblob)

struct pimg_obj {
	uint64_t name_hash;
	int64_t delta;             /* base - this core's base (selected only) */
	uint32_t flags, selected;  /* flags: main 1, vdso 2, this core 4 */
	struct gk_object_id id;    /* selected only */
};

/* Trampolines: bytes [start, start + len) of the region [start, end),
 * both from the anchor's base (objs index, or this core). */
struct pimg_blob {
	uint32_t anchor, len;
	uint64_t start, end;
};

/* Pages [start, end) of objs[obj] (from its base), in its program header
 * seg, made writable while its nwin windows (the next in the table) are
 * copied in: what apply_object (patcher.c) would make of them. */
struct pimg_run {
	uint32_t obj, seg;
	uint64_t start, end;
	uint32_t nwin, pad;
};

/* A window at base + off: payload orig[len], new[len]. */
struct pimg_win {
	uint64_t off;
	uint32_t len, pad;
};

typedef uint64_t __attribute__((may_alias)) word_t;

/* Word at a time: the image's ~10 KB are summed at every start, and an
 * emulator runs a byte loop eight times as often. */
static uint64_t
sum_words(uint64_t h, const void *p, size_t n)
{
	const word_t *w = p;
	for (size_t i = 0; i < n / 8; i++) {
		h = (h ^ w[i]) * 0x100000001b3ULL;
		h ^= h >> 32;
	}
	return h;
}

/* Not libc's memcmp: its code would be translated for this alone. */
static int
differ(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

static const struct gk_object *
find_self(const struct gk_object *objs, int n)
{
	for (int i = 0; i < n; i++)
		if (objs[i].is_self)
			return &objs[i];
	return NULL;
}

static int
images_usable(void)
{
	return !gk_log_enabled() && !gk_cfg.force_gateway && !gk_cfg.sys_filter;
}

/* The key of this process (h's key part, key_objs[0..n)) and the file's
 * path; -1 if there is none (cache off, an object without identity). */
static struct pimg_obj key_objs[GK_MAX_OBJS];

static int
make_key(const struct gk_object *objs, int n, const struct gk_object *self,
         struct pimg_header *h, char *path, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *cid;
	char name[24];
	uint64_t kh;

	memset(h, 0, sizeof(*h));
	memcpy(h->magic, PIMG_MAGIC, 8);
	h->version = PIMG_VERSION;
	cid = gk_cache_core_id(&h->core_id_len);
	memcpy(h->core_id, cid, h->core_id_len & 31);
	h->nobj = (uint32_t)n;
	h->reuse_rela = (uint32_t)gk_cfg.reuse_rela;
	memset(key_objs, 0, (size_t)n * sizeof(key_objs[0]));
	for (int i = 0; i < n; i++) {
		const struct gk_object *o = &objs[i];
		struct pimg_obj *k = &key_objs[i];

		k->flags = (uint32_t)(o->is_main | o->is_vdso << 1 | o->is_self << 2);
		k->name_hash = hash_str(o->path);
		k->selected = (uint32_t)o->selected;
		if (o->selected) {
			k->delta = (int64_t)(o->base - self->base);
			if (gk_cache_object_id(o, &k->id) != 0)
				return -1;
		}
	}
	kh = sum_words(sum_words(0xcbf29ce484222325ULL, h, KEY_HEAD), key_objs,
	               (size_t)n * sizeof(key_objs[0]));
	for (int i = 0; i < 16; i++)
		name[i] = hex[(kh >> (60 - 4 * i)) & 15];
	memcpy(name + 16, ".pimg", 6);
	return gk_cache_path(name, path, cap);
}

/* What a replay used, for a later round (gk_pimg_restore_regions). */
static struct {
	uint64_t start, end, len;
} used_regions[MAX_BLOBS];
static int nused;
static uint64_t file_buf[(64 << 10) / 8];

static int
read_image(const char *path, void **buf, size_t *size)
{
	struct stat st;
	long fd = GK_RAW(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	int bad;

	if (fd < 0)
		return -1;
	/* its bytes become code: only a file of this user nobody else may
	 * write (checks or'ed: each test of a chain is a block to translate) */
	bad = GK_RAW(SYS_fstat, fd, &st) != 0;
	bad |= st.st_uid != (uid_t)GK_RAW(SYS_geteuid, 0);
	bad |= (st.st_mode & 022) != 0;
	bad |= st.st_size < (off_t)(sizeof(struct pimg_header) + 8);
	bad |= (st.st_size & 7) != 0;
	bad |= st.st_size > (off_t)(64 << 20);
	*size = (size_t)st.st_size;
	*buf = file_buf;
	if (!bad && *size > sizeof(file_buf))
		bad = !(*buf = gk_map(*size));
	if (!bad)
		bad = GK_RAW(SYS_read, fd, *buf, *size) != (long)*size;
	GK_RAW(SYS_close, fd);
	if (bad && *buf && *buf != file_buf)
		gk_unmap(*buf, *size);
	return bad ? -1 : 0;
}

/* noinline: one copy of its blocks, not one per caller */
static __attribute__((noinline)) const struct gk_object *
anchor_of(const struct gk_object *objs, int n, const struct gk_object *self,
          uint32_t a)
{
	if (a == ANCHOR_SELF)
		return self;
	return a < (uint32_t)n && objs[a].selected && !objs[a].is_self ? &objs[a] : NULL;
}

/* Every check of the image at h (size bytes), nothing written: 0 if it
 * holds.  Conditions are or'ed with |, not ||: each test of a chain is a
 * block an emulator translates. */
static int
check(const struct gk_object *objs, int n, const struct gk_object *self,
      const struct pimg_header *h, size_t size)
{
	const struct pimg_blob *blob = (const void *)((const struct pimg_obj *)(h + 1) + n);
	const struct pimg_run *run = (const void *)(blob + h->nblob);
	const struct pimg_win *win = (const void *)(run + h->nrun);
	const uint8_t *pay = (const uint8_t *)(win + h->nwin), *p = pay, *end;
	uint32_t k = 0;
	int bad;

	bad = (h->nblob > MAX_BLOBS) | (h->nrun > MAX_WINS) | (h->nwin > MAX_WINS) |
	      ((h->payload & 7) != 0) | (h->payload > size);
	bad |= (size_t)(pay - (const uint8_t *)h) + h->payload + 8 != size;
	if (bad || differ((const uint8_t *)(h + 1), key_objs, (size_t)n * sizeof(key_objs[0])))
		return -1;
	end = pay + h->payload;
	for (uint32_t b = 0; b < h->nblob; b++) {
		const struct gk_object *a = anchor_of(objs, n, self, blob[b].anchor);
		uint64_t len8 = (blob[b].len + 7) & ~7UL;

		if (!a)
			return -1;
		bad |= (blob[b].len == 0) | (blob[b].end < blob[b].start) |
		       (blob[b].len > blob[b].end - blob[b].start) |
		       (a->base + blob[b].start < a->lo) | (a->base + blob[b].end > a->hi) |
		       (len8 > (uint64_t)(end - p));
		if (bad)
			return -1;
		p += len8;
	}
	for (uint32_t r = 0; r < h->nrun; r++) {
		const struct gk_object *o = anchor_of(objs, n, self, run[r].obj);
		const ElfW(Phdr) *ph;
		uint64_t ps, pe, rs, re;

		if (!o || o == self || run[r].seg >= (uint32_t)o->phnum ||
		    run[r].nwin > h->nwin - k)
			return -1;
		ph = (const ElfW(Phdr) *)o->phdr + run[r].seg;
		ps = o->base + ph->p_vaddr;
		pe = ps + ph->p_filesz;
		rs = o->base + run[r].start;
		re = o->base + run[r].end;
		bad = (ph->p_type != PT_LOAD) | !(ph->p_flags & PF_X) |
		      ((rs & (PAGE - 1)) != 0) | ((re & (PAGE - 1)) != 0) | (re <= rs) |
		      (rs < (ps & ~(PAGE - 1))) |
		      (re > ((ps + ph->p_memsz + PAGE - 1) & ~(PAGE - 1)));
		for (uint32_t w = k; w < k + run[r].nwin; w++) {
			uint64_t at = o->base + win[w].off, len = win[w].len;
			bad |= (len - 1 >= WIN_MAX) | (at < ps) | (at + len > pe) |
			       (at < rs) | (at + len > re) | (2 * len > (uint64_t)(end - p));
			if (bad || differ((const void *)(uintptr_t)at, p, len))
				return -1;
			p += 2 * len;
		}
		k += run[r].nwin;
	}
	return (k != h->nwin) | ((size_t)((p - pay + 7) & ~7L) != h->payload) ? -1 : 0;
}

int
gk_pimg_replay(struct gk_object *objs, int n)
{
	const struct gk_object *self = find_self(objs, n);
	struct pimg_header want;
	const struct pimg_header *h;
	const struct pimg_blob *blob;
	const struct pimg_run *run;
	const struct pimg_win *win;
	const uint8_t *p;
	char path[640];
	void *buf;
	size_t size;
	uint64_t lo = UINT64_MAX, hi = 0;
	int rc = -1;

	if (!self || !images_usable() || !gk_cache_init(self) ||
	    make_key(objs, n, self, &want, path, sizeof(path)) != 0 ||
	    read_image(path, &buf, &size) != 0)
		return -1;
	h = buf;
	if (differ(h, &want, KEY_HEAD) ||
	    sum_words(0xcbf29ce484222325ULL, buf, size - 8) !=
	    *(const word_t *)(const void *)((const uint8_t *)buf + size - 8) ||
	    check(objs, n, self, h, size) != 0)
		goto out;
	blob = (const void *)((const struct pimg_obj *)(h + 1) + n);
	run = (const void *)(blob + h->nblob);
	win = (const void *)(run + h->nrun);
	p = (const uint8_t *)(win + h->nwin);

	/* trampolines, each region sealed R-X as gk_tramp_seal does */
	nused = 0;
	for (uint32_t b = 0; b < h->nblob; b++) {
		const struct gk_object *a = anchor_of(objs, n, self, blob[b].anchor);
		uint64_t s = a->base + blob[b].start, e = a->base + blob[b].end;
		uint64_t pg = s & ~(PAGE - 1), pe = (e + PAGE - 1) & ~(PAGE - 1);

		if (GK_RAW(SYS_mprotect, pg, pe - pg, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
			goto out;   /* no window written yet: nothing reaches these */
		memcpy((void *)(uintptr_t)s, p, blob[b].len);
		GK_RAW(SYS_mprotect, pg, pe - pg, PROT_READ | PROT_EXEC);
		used_regions[nused].start = s;
		used_regions[nused].end = e;
		used_regions[nused++].len = blob[b].len;
		lo = pg < lo ? pg : lo;
		hi = pe > hi ? pe : hi;
		p += (blob[b].len + 7) & ~7UL;
	}
	/* windows, run by run: each run's pages writable only meanwhile (a
	 * page made writable loses an emulator's translations) */
	for (uint32_t r = 0; r < h->nrun; r++) {
		const struct gk_object *o = &objs[run[r].obj];
		uint64_t s = o->base + run[r].start, e = o->base + run[r].end;
		const struct pimg_win *w = win, *wend = win + run[r].nwin;

		win = wend;
		if (GK_RAW(SYS_mprotect, s, e - s, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
			gk_log_msg("patch: mprotect failed, pages left alone");
			for (; w < wend; w++)
				p += 2 * (size_t)w->len;
			continue;
		}
		for (; w < wend; w++) {
			memcpy((void *)(uintptr_t)(o->base + w->off), p + w->len, w->len);
			p += 2 * (size_t)w->len;
		}
		GK_RAW(SYS_mprotect, s, e - s, gk_object_segment_prot(o, (int)run[r].seg));
		lo = s < lo ? s : lo;
		hi = e > hi ? e : hi;
	}
	gk_arch_flush_icache(lo, hi);
	rc = 0;
out:
	if (buf != file_buf)
		gk_unmap(buf, size);
	if (rc)
		nused = 0;
	return rc;
}

void
gk_pimg_restore_regions(void)
{
	for (int i = 0; i < nused; i++) {
		gk_tramp_add_tail(used_regions[i].start, used_regions[i].end);
		gk_tramp_commit(used_regions[i].start, used_regions[i].len);
	}
	nused = 0;
}

/* A region a replay may fill: one the placement takes first in a round
 * (a tail after an executable segment, the object's DT_RELA, the pool). */
static int
region_ok(const struct gk_object *a, int is_self, uint64_t start, uint64_t end)
{
	struct gk_range t[GK_MAX_TEXT];
	uint64_t rs, re;
	int nt;

	if (is_self && gk_tramp_is_pool(start, end))
		return 1;
	nt = gk_object_tails(a, t, GK_MAX_TEXT);
	for (int i = 0; i < nt; i++)
		if (t[i].start == start && t[i].end == end)
			return 1;
	return !is_self && gk_cfg.reuse_rela && gk_object_rela(a, &rs, &re) == 0 &&
	       ((rs + 3) & ~3UL) == start && re == end;
}

void
gk_pimg_store(const struct gk_object *objs, int n, const struct gk_staged *st,
              size_t nst, void *scratch, size_t cap)
{
	const struct gk_object *self = find_self(objs, n);
	struct pimg_header h;
	struct pimg_blob blob[MAX_BLOBS];
	int region_blob[GK_TRAMP_MAX_REGIONS];
	struct pimg_win *win = scratch;
	struct pimg_run *run = (struct pimg_run *)(win + nst);
	uint8_t *pay = (uint8_t *)(run + nst);
	char path[640];
	size_t payload = 0;
	uint64_t sum;

	if (!self || !images_usable() || nst > MAX_WINS ||
	    (size_t)(pay - (uint8_t *)scratch) > cap ||
	    make_key(objs, n, self, &h, path, sizeof(path)) != 0)
		return;
	for (int i = 0; i < GK_TRAMP_MAX_REGIONS; i++)
		region_blob[i] = -1;
	h.nblob = h.nrun = 0;
	h.nwin = (uint32_t)nst;
	for (size_t k = 0; k < nst; k++) {
		const struct gk_object *o = &objs[st[k].obj];
		uint64_t start, end, used, pg = st[k].addr & ~(PAGE - 1);
		uint64_t pe = (st[k].addr + st[k].len + PAGE - 1) & ~(PAGE - 1);
		int r = gk_tramp_region(st[k].tramp, st[k].tramp_len, &used);
		int seg = gk_object_exec_segment(o, st[k].addr, st[k].addr + st[k].len);
		struct pimg_run *cur = h.nrun ? &run[h.nrun - 1] : NULL;

		if (r < 0 || seg < 0 || st[k].len - 1u >= WIN_MAX)
			return;
		win[k].off = st[k].addr - o->base;
		win[k].len = st[k].len;
		win[k].pad = 0;
		/* page runs as apply_object makes them: one segment, pages no
		 * more than one apart */
		if (cur && cur->obj == st[k].obj && cur->seg == (uint32_t)seg &&
		    pg >= o->base + cur->start && pg <= o->base + cur->end + PAGE) {
			if (pe > o->base + cur->end)
				cur->end = pe - o->base;
			cur->nwin++;
		} else {
			run[h.nrun++] = (struct pimg_run){st[k].obj, (uint32_t)seg,
			                                  pg - o->base, pe - o->base, 1, 0};
		}
		if (region_blob[r] >= 0)
			continue;
		if (h.nblob == MAX_BLOBS)
			return;
		gk_tramp_region_bounds(r, &start, &end, &used);
		struct pimg_blob *b = &blob[h.nblob];
		const struct gk_object *a = start >= o->lo && end <= o->hi ? o : self;
		/* only what the placement takes first (a hole, another
		 * object's tail: no image) */
		if (!region_ok(a, a == self, start, end))
			return;
		b->anchor = a == self ? ANCHOR_SELF : st[k].obj;
		b->start = start - a->base;
		b->end = end - a->base;
		b->len = (uint32_t)(used - start);
		region_blob[r] = (int)h.nblob++;
	}
	/* the payload after the runs actually made */
	pay = (uint8_t *)(run + h.nrun);
	for (uint32_t b = 0; b < h.nblob; b++) {
		const struct gk_object *a = blob[b].anchor == ANCHOR_SELF ? self : &objs[blob[b].anchor];
		size_t len = (blob[b].len + 7) & ~7UL;
		if ((size_t)(pay - (uint8_t *)scratch) + payload + len > cap)
			return;
		memset(pay + payload, 0, len);
		memcpy(pay + payload, (const void *)(uintptr_t)(a->base + blob[b].start),
		       blob[b].len);
		payload += len;
	}
	for (size_t k = 0; k < nst; k++) {
		if ((size_t)(pay - (uint8_t *)scratch) + payload + 2 * st[k].len + 8 > cap)
			return;
		memcpy(pay + payload, (const void *)(uintptr_t)st[k].addr, st[k].len);
		memcpy(pay + payload + st[k].len, st[k].bytes, st[k].len);
		payload += 2 * (size_t)st[k].len;
	}
	while (payload & 7)
		pay[payload++] = 0;
	h.payload = payload;
	{
		const void *part[7] = {&h, key_objs, blob, win, run, pay, &sum};
		size_t len[7] = {sizeof(h), (size_t)n * sizeof(key_objs[0]),
		                 h.nblob * sizeof(blob[0]), 0, h.nrun * sizeof(*run),
		                 payload, sizeof(sum)};
		/* file order: header, key, blobs, runs, windows, payload */
		part[3] = run;
		len[3] = h.nrun * sizeof(*run);
		part[4] = win;
		len[4] = nst * sizeof(*win);
		sum = 0xcbf29ce484222325ULL;
		for (int i = 0; i < 6; i++)
			sum = sum_words(sum, part[i], len[i]);
		gk_cache_write(path, part, len, 7);
	}
}
