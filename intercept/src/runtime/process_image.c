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
 * The file is a list of writable intervals ("records"), each made RWX
 * once while its pieces (trampoline regions, then windows) are copied in,
 * then given its protection back; the recorder chose them as the patcher
 * would, but for libc and the other objects besides ld.so one interval per
 * executable segment, trampolines included: a page made writable loses an
 * emulator's translations of it, and of those objects only a few blocks
 * (libc's start-up) ran before the constructor and run again, while every
 * interval is two system calls (ld.so's code runs throughout: its runs
 * of patched pages stay as apply_object makes them).  The hook's
 * declaration of the calls it wants (wanted.c), which shaped the round
 * (sites of numbers it never wants stay unpatched), is recorded with it
 * and restored rather than declared again: a fixed function of this core,
 * which the key names (images are off with a filter or the log).  The
 * replay is
 * written for few distinct blocks (it is what every start translates):
 * checks or'ed, one loop shape for every write.
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
#define WANT_BYTES GK_MAX_SYSNO        /* gk_want's classes, recorded */
_Static_assert(WANT_BYTES % 8 == 0, "tables stay 8-aligned");

struct pimg_header {
	char magic[8];
	uint32_t version, core_id_len;
	uint8_t core_id[32];
	uint32_t nobj, reuse_rela;
	/* the key ends here */
	uint32_t nrec, npiece;
	uint64_t payload;          /* bytes after the tables, a multiple of 8 */
	uint32_t declared, pad;    /* gk_want_declared; then gk_want's classes */
};
#define KEY_HEAD offsetof(struct pimg_header, nrec)

struct pimg_obj {
	uint64_t name_hash;
	int64_t delta;             /* base - this core's base (selected only) */
	uint32_t flags, selected;  /* flags: main 1, vdso 2, this core 4 */
	struct gk_object_id id;    /* selected only */
};

/* Pages [start, end) of the anchor (objs index, or this core), from its
 * base: RWX while its npiece pieces (the next in the table) are copied
 * in, then prot (its windows' segment: program header seg). */
struct pimg_rec {
	uint32_t anchor, npiece;
	uint64_t start, end;
	uint32_t prot, seg;
};

/* At the anchor's base + off: trampolines (payload new[len]: a region's
 * used bytes) or a patched window (window 1; payload orig[len], new[len]). */
struct pimg_piece {
	uint64_t off;
	uint32_t len, window;
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

/* as for per-object images (patcher.c): the log reports every object's
 * plan, and plans made with a filter differ */
#define IMAGES_USABLE() \
	(!gk_log_enabled() & !gk_cfg.force_gateway & !gk_cfg.sys_filter)

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

	/* (gk_zero_words, gk_copy_bytes: string.c, why) */
	_Static_assert(sizeof(*h) % 8 == 0 && sizeof(key_objs[0]) % 8 == 0, "zeroed as words");
	gk_zero_words(h, sizeof(*h));
	memcpy(h->magic, PIMG_MAGIC, 8);
	h->version = PIMG_VERSION;
	cid = gk_cache_core_id(&h->core_id_len);
	gk_copy_bytes(h->core_id, cid, h->core_id_len & 31);
	h->nobj = (uint32_t)n;
	h->reuse_rela = (uint32_t)gk_cfg.reuse_rela;
	gk_zero_words(key_objs, (size_t)n * sizeof(key_objs[0]));
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

/* Trampolines a replay wrote, for a later round (gk_pimg_restore_regions). */
static struct {
	uint64_t start, len;
} used_regions[MAX_BLOBS + 1];   /* + 1: the replay's branchless store */
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

#define RX (PROT_READ | PROT_EXEC)

/* Every check of the image at h (size bytes), nothing written: 0 if it
 * holds.  Conditions are or'ed with |, not ||: each test of a chain is a
 * block an emulator translates. */
static int
check(const struct gk_object *objs, int n, const struct gk_object *self,
      const struct pimg_header *h, size_t size)
{
	const struct pimg_rec *rec = (const void *)((const uint8_t *)((const struct pimg_obj *)(h + 1) + n) + WANT_BYTES);
	const struct pimg_piece *pc = (const void *)(rec + h->nrec);
	const uint8_t *pay = (const uint8_t *)(pc + h->npiece), *p = pay, *end;
	uint32_t k = 0, ntramp = 0;
	int bad;

	bad = (h->nrec > MAX_WINS) | (h->npiece > MAX_WINS) | (h->declared > 1) |
	      ((h->payload & 7) != 0) | (h->payload > size);
	bad |= (size_t)(pay - (const uint8_t *)h) + h->payload + 8 != size;
	if (bad || gk_bytes_differ((const uint8_t *)(h + 1), key_objs, (size_t)n * sizeof(key_objs[0])))
		return -1;
	end = pay + h->payload;
	for (uint32_t r = 0; r < h->nrec; r++) {
		const struct gk_object *a = anchor_of(objs, n, self, rec[r].anchor);
		const ElfW(Phdr) *ph;
		uint64_t s, e, ps, pe;
		int segok;

		if (!a || (rec[r].npiece > h->npiece - k) | (rec[r].seg >= (uint32_t)a->phnum))
			return -1;
		s = a->base + rec[r].start;
		e = a->base + rec[r].end;
		bad = ((s & (PAGE - 1)) != 0) | ((e & (PAGE - 1)) != 0) | (e <= s) |
		      (s < a->lo) | (e > a->hi);
		/* windows: in the file part of this executable segment, whose
		 * protection the record gives back */
		ph = (const ElfW(Phdr) *)a->phdr + rec[r].seg;
		ps = a->base + ph->p_vaddr;
		pe = ps + ph->p_filesz;
		segok = (ph->p_type == PT_LOAD) & ((ph->p_flags & PF_X) != 0) & (a != self) &
		        (rec[r].prot == (((ph->p_flags & PF_R) ? PROT_READ : 0) |
		                         ((ph->p_flags & PF_W) ? PROT_WRITE : 0) | PROT_EXEC));
		for (uint32_t q = k; q < k + rec[r].npiece; q++) {
			uint64_t at = a->base + pc[q].off, len = pc[q].len;
			uint64_t win = pc[q].window, need = len << (win & 1);

			bad |= (len == 0) | (win > 1) | (at < s) | (at + len > e) |
			       (need > (uint64_t)(end - p));
			/* a window: in its segment, still its original bytes;
			 * trampolines: sealed R-X, as gk_tramp_seal does */
			win &= 1;
			ntramp += (uint32_t)!win;
			bad |= (int)win & (!segok | (len > WIN_MAX) | (at < ps) | (at + len > pe));
			bad |= (int)!win & ((rec[r].prot != RX) | (ntramp > MAX_BLOBS));
			/* (bytes compared only once the window is known to be there) */
			if (bad || gk_bytes_differ((const void *)(uintptr_t)at, p, len & -win))
				return -1;
			p += need;
		}
		k += rec[r].npiece;
	}
	return (k != h->npiece) | ((size_t)((p - pay + 7) & ~7L) != h->payload) ? -1 : 0;
}

int
gk_pimg_replay(struct gk_object *objs, int n)
{
	const struct gk_object *self = find_self(objs, n);
	struct pimg_header want;
	const struct pimg_header *h;
	const struct pimg_rec *rec;
	const struct pimg_piece *pc;
	const uint8_t *p;
	char path[640];
	void *buf;
	size_t size;
	uint64_t lo = UINT64_MAX, hi = 0;
	int rc = -1;

	if (!self || !IMAGES_USABLE() || !gk_cache_init(self) ||
	    make_key(objs, n, self, &want, path, sizeof(path)) != 0 ||
	    read_image(path, &buf, &size) != 0)
		return -1;
	h = buf;
	if (gk_bytes_differ(h, &want, KEY_HEAD) ||
	    sum_words(0xcbf29ce484222325ULL, buf, size - 8) !=
	    *(const word_t *)(const void *)((const uint8_t *)buf + size - 8) ||
	    check(objs, n, self, h, size) != 0)
		goto out;
	gk_want_restore((const uint8_t *)((const struct pimg_obj *)(h + 1) + n), (int)h->declared);
	rec = (const void *)((const uint8_t *)((const struct pimg_obj *)(h + 1) + n) + WANT_BYTES);
	pc = (const void *)(rec + h->nrec);
	p = (const uint8_t *)(pc + h->npiece);

	/* Records with trampolines come before any window that jumps to
	 * them (the recorder's order); a record that cannot be made
	 * writable ends the replay there, every window written so far with
	 * its trampolines in place (as the patcher leaves pages alone). */
	nused = 0;
	rc = 0;
	for (uint32_t r = 0; r < h->nrec; r++) {
		const struct gk_object *a = anchor_of(objs, n, self, rec[r].anchor);
		uint64_t s = a->base + rec[r].start, e = a->base + rec[r].end;

		if (GK_RAW(SYS_mprotect, s, e - s, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
			gk_log_msg("patch: mprotect failed, pages left alone");
			rc = r ? 0 : -1;   /* nothing written: the plans instead */
			break;
		}
		for (const struct pimg_piece *q = pc, *qe = pc + rec[r].npiece; q < qe; q++) {
			uint8_t *to = (uint8_t *)(uintptr_t)(a->base + q->off);
			uint64_t at = a->base + q->off;
			p += (size_t)q->len * q->window;   /* past the original bytes */
			/* bytes: a few KiB in all, and memcpy's word paths (any
			 * alignment) would be translated for them alone */
			for (uint32_t i = 0; i < q->len; i++)
				to[i] = p[i];
			p += q->len;
			/* trampolines kept (at most MAX_BLOBS: check), no branch */
			used_regions[nused].start = at;
			used_regions[nused].len = q->len;
			nused += !q->window;
		}
		pc += rec[r].npiece;
		GK_RAW(SYS_mprotect, s, e - s, rec[r].prot);
		lo ^= (lo ^ s) & -(uint64_t)(s < lo);
		hi ^= (hi ^ e) & -(uint64_t)(e > hi);
	}
	gk_arch_flush_icache(lo, hi);
out:
	if (buf != file_buf)
		gk_unmap(buf, size);
	if (rc)
		nused = 0;
	return rc;
}

/* As the constructor's round would have left them: every selected
 * object's DT_RELA a region (patcher.c, plan_object), and what the replay
 * wrote taken (the tails and the pool: registered by the caller). */
void
gk_pimg_restore_regions(const struct gk_object *objs, int n)
{
	uint64_t rs, re;

	for (int i = 0; i < n; i++)
		if (objs[i].selected && gk_cfg.reuse_rela &&
		    gk_object_rela(&objs[i], &rs, &re) == 0)
			gk_tramp_add_tail(rs, re);
	for (int i = 0; i < nused; i++)
		gk_tramp_commit(used_regions[i].start, used_regions[i].len);
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

/* The executable segment of o whose pages hold [s, e), or -1. */
static int
exec_pages(const struct gk_object *o, uint64_t s, uint64_t e)
{
	const ElfW(Phdr) *ph = o->phdr;
	for (int i = 0; i < o->phnum; i++) {
		uint64_t ps = (o->base + ph[i].p_vaddr) & ~(PAGE - 1);
		uint64_t pe = (o->base + ph[i].p_vaddr + ph[i].p_memsz + PAGE - 1) & ~(PAGE - 1);
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) && s >= ps && e <= pe)
			return i;
	}
	return -1;
}

struct region_use {
	uint32_t anchor;           /* objs index or ANCHOR_SELF */
	int seg;                   /* folded into that segment's record, or -1 */
	uint64_t start, end, used;
};

void
gk_pimg_store(const struct gk_object *objs, int n, const struct gk_staged *st,
              size_t nst, void *scratch, size_t cap)
{
	const struct gk_object *self = find_self(objs, n);
	struct pimg_header h;
	struct region_use reg[MAX_BLOBS];
	int region_of[GK_TRAMP_MAX_REGIONS];
	static uint8_t seg_of[MAX_WINS];
	static uint8_t reg_of[MAX_WINS];
	size_t max = nst + MAX_BLOBS;
	struct pimg_rec *rec = scratch;
	struct pimg_piece *pc = (struct pimg_piece *)(rec + max);
	uint8_t *pay = (uint8_t *)(pc + max);
	size_t payload = 0, npc = 0, room;
	uint32_t nreg = 0, nrec = 0;
	uint64_t sum;
	char path[640];

	if (!self || !IMAGES_USABLE() || nst > MAX_WINS ||
	    (size_t)(pay - (uint8_t *)scratch) > cap ||
	    make_key(objs, n, self, &h, path, sizeof(path)) != 0)
		return;
	room = cap - (size_t)(pay - (uint8_t *)scratch);
	for (int i = 0; i < GK_TRAMP_MAX_REGIONS; i++)
		region_of[i] = -1;
	/* the regions the trampolines went to, and each window's segment */
	for (size_t k = 0; k < nst; k++) {
		const struct gk_object *o = &objs[st[k].obj];
		uint64_t start, end, used;
		int r = gk_tramp_region(st[k].tramp, st[k].tramp_len, &used);
		int seg = gk_object_exec_segment(o, st[k].addr, st[k].addr + st[k].len);

		if (r < 0 || seg < 0 || seg > 255 || st[k].len - 1u >= WIN_MAX)
			return;
		seg_of[k] = (uint8_t)seg;
		if (region_of[r] < 0) {
			const struct gk_object *a;
			if (nreg == MAX_BLOBS)
				return;
			gk_tramp_region_bounds(r, &start, &end, &used);
			a = start >= o->lo && end <= o->hi ? o : self;
			/* only what the placement takes first (a hole, another
			 * object's tail: no image) */
			if (!region_ok(a, a == self, start, end))
				return;
			reg[nreg].anchor = a == self ? ANCHOR_SELF : st[k].obj;
			reg[nreg].start = start;
			reg[nreg].end = end;
			reg[nreg].used = used;
			/* folded into its segment's record if R-X and not ld.so's */
			reg[nreg].seg = a == self || o->is_ldso ? -1 : exec_pages(o, start, end);
			if (reg[nreg].seg >= 0 && gk_object_segment_prot(o, reg[nreg].seg) != RX)
				reg[nreg].seg = -1;
			region_of[r] = (int)nreg++;
		}
		reg_of[k] = (uint8_t)region_of[r];
	}
	/* folded only if every window using it is in that record */
	for (size_t k = 0; k < nst; k++) {
		struct region_use *u = &reg[reg_of[k]];
		if (u->seg >= 0 && (u->anchor != st[k].obj || u->seg != seg_of[k]))
			u->seg = -1;
	}

#define PIECE(base_, at_, len_, win_, bytes_)                                   \
	do {                                                                    \
		if (payload + 2 * (size_t)(len_) + 8 > room)                    \
			return;                                                 \
		pc[npc++] = (struct pimg_piece){(at_) - (base_), (uint32_t)(len_), (win_)}; \
		if (win_) {                                                     \
			memcpy(pay + payload, (const void *)(uintptr_t)(at_), (len_)); \
			payload += (len_);                                      \
		}                                                               \
		memcpy(pay + payload, (bytes_), (len_));                        \
		payload += (len_);                                              \
	} while (0)

	/* trampolines not folded first: before any window that jumps there */
	for (uint32_t i = 0; i < nreg; i++) {
		const struct region_use *u = &reg[i];
		const struct gk_object *a = u->anchor == ANCHOR_SELF ? self : &objs[u->anchor];
		if (u->seg >= 0)
			continue;
		rec[nrec++] = (struct pimg_rec){u->anchor, 1, (u->start & ~(PAGE - 1)) - a->base,
		                                ((u->end + PAGE - 1) & ~(PAGE - 1)) - a->base, RX, 0};
		PIECE(a->base, u->start, u->used - u->start, 0,
		      (const void *)(uintptr_t)u->start);
	}
	/* windows: one record per segment (its folded trampolines first), or
	 * for ld.so runs of pages no more than one apart, as apply_object */
	for (size_t k0 = 0, k1; k0 < nst; k0 = k1) {
		const struct gk_object *o = &objs[st[k0].obj];
		int whole = !o->is_ldso;
		struct pimg_rec *r = &rec[nrec++];
		uint64_t s = st[k0].addr & ~(PAGE - 1), e = 0;

		for (k1 = k0; k1 < nst && st[k1].obj == st[k0].obj && seg_of[k1] == seg_of[k0]; k1++) {
			uint64_t pg = st[k1].addr & ~(PAGE - 1);
			uint64_t pe = (st[k1].addr + st[k1].len + PAGE - 1) & ~(PAGE - 1);
			if (!whole && k1 > k0 && (pg < s || pg > e + PAGE))
				break;
			s = pg < s ? pg : s;
			e = pe > e ? pe : e;
		}
		*r = (struct pimg_rec){st[k0].obj, 0, 0, 0,
		                       (uint32_t)gk_object_segment_prot(o, seg_of[k0]),
		                       seg_of[k0]};
		for (uint32_t i = 0; whole && i < nreg; i++) {
			const struct region_use *u = &reg[i];
			if (u->anchor != st[k0].obj || u->seg != seg_of[k0])
				continue;
			s = (u->start & ~(PAGE - 1)) < s ? u->start & ~(PAGE - 1) : s;
			e = ((u->end + PAGE - 1) & ~(PAGE - 1)) > e ? (u->end + PAGE - 1) & ~(PAGE - 1) : e;
			PIECE(o->base, u->start, u->used - u->start, 0,
			      (const void *)(uintptr_t)u->start);
			r->npiece++;
		}
		for (size_t k = k0; k < k1; k++) {
			PIECE(o->base, st[k].addr, st[k].len, 1, st[k].bytes);
			r->npiece++;
		}
		r->start = s - o->base;
		r->end = e - o->base;
	}
#undef PIECE
	while (payload & 7)
		pay[payload++] = 0;
	h.nrec = nrec;
	h.npiece = (uint32_t)npc;
	h.payload = payload;
	h.declared = (uint32_t)(gk_want_declared != 0);
	{
		const void *part[7] = {&h, key_objs, gk_want, rec, pc, pay, &sum};
		size_t len[7] = {sizeof(h), (size_t)n * sizeof(key_objs[0]), WANT_BYTES,
		                 nrec * sizeof(*rec), npc * sizeof(*pc), payload, sizeof(sum)};
		sum = 0xcbf29ce484222325ULL;
		for (int i = 0; i < 6; i++)
			sum = sum_words(sum, part[i], len[i]);
		gk_cache_write(path, part, len, 7);
	}
}
