/*
 * tramp_mem.c - memory for per-site trampolines, as close to the patched
 * code as possible.
 *
 * A `jal` reaches +-1 MiB, so a trampoline within that distance lets the
 * 4-byte ecall itself become the jump (nothing else moves).  Two sources:
 *   - tails: the unused bytes between the end of an executable PT_LOAD
 *     and the end of its last page (already mapped R-X, privately);
 *   - the object's DT_RELA table (patcher.c adds it, as a tail);
 *   - a pool of zero pages in the core's own text: the preload library is
 *     loaded right next to ld.so (and libc), whose few sites it serves;
 *   - holes: free address space near the object, found in
 *     /proc/self/maps and claimed with mmap(MAP_FIXED_NOREPLACE) at that
 *     exact address.  The result is always checked: an old kernel or
 *     qemu-user may treat the flag as a hint and map elsewhere, and qemu
 *     has host mappings in the guest space that its maps file hides.
 * Holes are claimed only when no tail is in reach of a site, and the maps
 * file is read only then: most processes never need either (glibc's libc
 * and ld.so fit in their own tails and DT_RELA), and under qemu-user the
 * maps file (which qemu builds from the host's, page by page) and the code
 * that parses it and searches it cost about half a millisecond per start.
 * The work buffers (gk_map) stay far from the objects meanwhile, so a hole
 * claimed late is where an early claim would have been.
 * Only used by the constructor (single-threaded), so no locking.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PAGE 4096UL
#define CHUNK (64UL * 1024)
#define MAX_REGIONS GK_TRAMP_MAX_REGIONS
#define MAX_BUSY 2048
#define JAL_REACH_MEM GK_ARCH_NEAR_REACH

struct region {
	uint64_t start, end, used;
	int tail;          /* inside an object's R-X mapping */
	int opened;        /* tail page made writable */
};

static struct region regions[MAX_REGIONS];
static int nregions;

/* Known-occupied intervals: /proc/self/maps plus failed claims. */
static struct { uint64_t s, e; } busy[MAX_BUSY];
static int nbusy;
static int maps_read;      /* /proc/self/maps is in busy (read_maps) */
static unsigned long mmap_tries, mmap_misses;
struct region;
static struct region *claim(uint64_t near, uint64_t reach, int dir);

static void
busy_add(uint64_t s, uint64_t e)
{
	if (nbusy < MAX_BUSY) {
		busy[nbusy].s = s;
		busy[nbusy].e = e;
		nbusy++;
	}
}

static uint64_t
parse_hex(const char **p)
{
	uint64_t v = 0;
	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

static char *
next_line(char *s)
{
	for (; *s; s++)
		if (*s == '\n')
			return s;
	return NULL;
}

/* Streamed through a small stack buffer: a heap or mmap buffer here
 * would itself take the free space right next to the objects.  Appends
 * to busy (what gk_map noted before stays). */
static void
read_maps(void)
{
	char buf[4096];
	size_t have = 0;
	long fd, n;

	maps_read = 1;
	fd = GK_RAW(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC, 0);
	while (fd >= 0 &&
	       (n = GK_RAW(SYS_read, fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		char *line = buf, *nl;
		have += (size_t)n;
		buf[have] = '\0';
		/* plain loops, not strchr/memmove: start-up cost (util.c) */
		while ((nl = next_line(line)) != NULL) {
			const char *p = line;
			uint64_t st = parse_hex(&p);
			if (*p == '-') {
				p++;
				busy_add(st, parse_hex(&p));
			}
			line = nl + 1;
		}
		have = (size_t)(buf + have - line);
		for (size_t i = 0; i < have; i++)
			buf[i] = line[i];
		if (have == sizeof(buf) - 1)
			have = 0;   /* absurd line: drop it */
	}
	if (fd >= 0)
		GK_RAW(SYS_close, fd);
	busy_add(0, 1UL << 16);   /* never map near NULL (mmap_min_addr) */
}

/* The pool: whole pages of its own (a page made writable holds no code
 * that runs meanwhile, and under qemu-user loses no translation). */
#define POOL_BYTES (8 * PAGE)
__asm__(".pushsection .text.gk_tramp_pool,\"ax\",@progbits\n"
        ".balign 4096\n"
        ".globl gk_tramp_pool\n"
        ".hidden gk_tramp_pool\n"
        "gk_tramp_pool:\n"
        ".space 8 * 4096\n"
        ".balign 4096\n"
        ".popsection\n");
extern const char gk_tramp_pool[];

/* Holes are found only when needed (claim); a patch round (the
 * constructor's, a dlopen's) starts from the maps file as it is then. */
void
gk_tramp_init(void)
{
	uint64_t pool = (uint64_t)(uintptr_t)gk_tramp_pool;

	nbusy = 0;
	maps_read = 0;
	gk_tramp_add_tail(pool, pool + POOL_BYTES);
}

void
gk_tramp_note_busy(uint64_t start, uint64_t end)
{
	busy_add(start, end);
}

/* Claim the nearest free chunks just below and above an object before
 * anything else (our own work buffers included) can land there. */
void
gk_tramp_claim_around(uint64_t lo, uint64_t hi)
{
	claim(lo, JAL_REACH_MEM, -1);
	claim(hi - 1, JAL_REACH_MEM, 1);
}

void
gk_tramp_add_tail(uint64_t start, uint64_t end)
{
	start = (start + 3) & ~3UL;
	if (end <= start + 64 || nregions >= MAX_REGIONS)
		return;
	for (int i = 0; i < nregions; i++)
		if (regions[i].start == start && regions[i].end == end)
			return;   /* the same DT_RELA, from an image then the plan */
	regions[nregions++] = (struct region){start, end, start, 1, 0};
}

static int
within(uint64_t near, uint64_t s, uint64_t e, uint64_t reach)
{
	uint64_t lo = near > reach ? near - reach : 0;
	return s >= lo && e <= near + reach;
}

static int
is_busy(uint64_t s, uint64_t e, uint64_t *skip_to, uint64_t *skip_below)
{
	for (int i = 0; i < nbusy; i++)
		if (busy[i].s < e && s < busy[i].e) {
			*skip_to = busy[i].e;
			*skip_below = busy[i].s;
			return 1;
		}
	return 0;
}

/* Nearest free page-aligned chunk of `size` on one side of `near`. */
static uint64_t
find_free(uint64_t near, uint64_t reach, uint64_t size, int up)
{
	uint64_t lo = near > reach ? (near - reach + PAGE - 1) & ~(PAGE - 1) : PAGE;
	uint64_t hi = (near + reach) & ~(PAGE - 1);
	uint64_t to, below;

	if (up) {
		uint64_t s = (near + PAGE) & ~(PAGE - 1);
		while (s + size <= hi) {
			if (!is_busy(s, s + size, &to, &below))
				return s;
			s = (to + PAGE - 1) & ~(PAGE - 1);
		}
	} else {
		uint64_t s = (near & ~(PAGE - 1));
		if (s < size)
			return 0;
		s -= size;
		while (s >= lo) {
			if (!is_busy(s, s + size, &to, &below))
				return s;
			if (below < size + lo)
				break;
			s = (below - size) & ~(PAGE - 1);
		}
	}
	return 0;
}

/* dir: -1 only below near, 1 only above, 0 whichever is nearer */
static struct region *
claim(uint64_t near, uint64_t reach, int dir)
{
	if (!maps_read)
		read_maps();
	for (int attempt = 0; attempt < 16 && nregions < MAX_REGIONS; attempt++) {
		uint64_t best = 0, bestd = UINT64_MAX, size = 0;

		for (uint64_t sz = CHUNK; sz >= PAGE && !best; sz /= 4) {
			for (int up = 0; up < 2; up++) {
				if ((dir < 0 && up) || (dir > 0 && !up))
					continue;
				uint64_t s = find_free(near, reach, sz, up);
				uint64_t d = s > near ? s - near : near - s;
				if (s && d < bestd) {
					best = s;
					bestd = d;
					size = sz;
				}
			}
		}
		if (!best)
			return NULL;
		mmap_tries++;
		long r = GK_RAW(SYS_mmap, best, size, PROT_READ | PROT_WRITE,
		                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		                -1, 0);
		busy_add(best, best + size);   /* ours now, or someone else's */
		if ((uint64_t)r == best) {
			regions[nregions] = (struct region){best, best + size, best, 0, 1};
			return &regions[nregions++];
		}
		mmap_misses++;
		if (r > 0 || r < -4095)
			GK_RAW(SYS_munmap, r, size);
	}
	return NULL;
}

/* The object being planned: its own regions (tails, DT_RELA) are tried
 * before any other's, so its trampolines depend on no other object's
 * place (and its patch image, patcher.c, holds in any program); for ld.so
 * this core's pool before them (patcher.c: why), whose place its image's
 * key holds too.  pref[0] first, then pref[1], then the rest. */
static struct {
	uint64_t lo, hi;
} pref[2];

void
gk_tramp_prefer(uint64_t lo, uint64_t hi)
{
	pref[0].lo = lo;
	pref[0].hi = hi;
	pref[1].lo = pref[1].hi = 0;
}

void
gk_tramp_prefer_pool(uint64_t lo, uint64_t hi)
{
	pref[0].lo = (uint64_t)(uintptr_t)gk_tramp_pool;
	pref[0].hi = pref[0].lo + POOL_BYTES;
	pref[1].lo = lo;
	pref[1].hi = hi;
}

/* Region r's pass: 0 or 1 if inside pref[0] or pref[1], else 2. */
static int
pass_of(const struct region *r)
{
	for (int k = 0; k < 2; k++)
		if (r->start >= pref[k].lo && r->end <= pref[k].hi)
			return k;
	return 2;
}

uint64_t
gk_tramp_reserve(uint64_t near, uint64_t reach, size_t need)
{
	struct region *r;

	for (int pass = 0; pass < 3; pass++)
		for (int i = 0; i < nregions; i++) {
			r = &regions[i];
			if (pass_of(r) != pass)
				continue;
			if (r->used + need <= r->end &&
			    within(near, r->used, r->used + need, reach))
				return r->used;
		}
	r = claim(near, reach, 0);
	if (r && r->used + need <= r->end && within(near, r->used, r->used + need, reach))
		return r->used;
	return 0;
}

static int
far_enough(uint64_t near, uint64_t s, uint64_t e, uint64_t min)
{
	return (s > near && s - near >= min) || (e <= near && near - e >= min);
}

uint64_t
gk_tramp_reserve_far(uint64_t near, uint64_t min, uint64_t reach, size_t need)
{
	for (int k = 2; k < 64; k++) {
		for (int i = 0; i < nregions; i++) {
			struct region *r = &regions[i];
			if (r->used + need <= r->end &&
			    within(near, r->used, r->used + need, reach) &&
			    far_enough(near, r->used, r->used + need, min))
				return r->used;
		}
		/* free space further and further up, then down, from near */
		uint64_t at = (k & 1) ? near - (uint64_t)(k / 2) * 2 * min
		                      : near + (uint64_t)(k / 2) * 2 * min;
		claim(at, min / 2, 0);
	}
	return 0;
}

void
gk_tramp_close(uint64_t start, uint64_t end)
{
	start = (start + 3) & ~3UL;
	for (int i = 0; i < nregions; i++)
		if (regions[i].start == start && regions[i].end == end)
			regions[i].used = end;
}

int
gk_tramp_region(uint64_t addr, size_t len, uint64_t *next_free)
{
	for (int i = 0; i < nregions; i++)
		if (addr >= regions[i].start && addr + len <= regions[i].end) {
			*next_free = regions[i].used;
			return i;
		}
	return -1;
}

void
gk_tramp_region_bounds(int i, uint64_t *start, uint64_t *end, uint64_t *used)
{
	*start = regions[i].start;
	*end = regions[i].end;
	*used = regions[i].used;
}

int
gk_tramp_is_pool(uint64_t start, uint64_t end)
{
	uint64_t pool = (uint64_t)(uintptr_t)gk_tramp_pool;
	return start == pool && end == pool + POOL_BYTES;
}

void
gk_tramp_commit(uint64_t slot, size_t used)
{
	for (int i = 0; i < nregions; i++)
		if (regions[i].used == slot) {
			regions[i].used = (slot + used + 3) & ~3UL;
			return;
		}
}

int
gk_tramp_write(uint64_t slot, const uint8_t *bytes, size_t n)
{
	for (int i = 0; i < nregions; i++) {
		struct region *r = &regions[i];
		if (slot < r->start || slot + n > r->end)
			continue;
		if (!r->opened) {
			uint64_t pg = r->start & ~(PAGE - 1);
			if (GK_RAW(SYS_mprotect, pg, r->end - pg,
			           PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
				return -1;
			r->opened = 1;
		}
		memcpy((void *)slot, bytes, n);
		return 0;
	}
	return -1;
}

void
gk_tramp_seal(void)
{
	for (int i = 0; i < nregions; i++) {
		struct region *r = &regions[i];
		uint64_t pg = r->start & ~(PAGE - 1);
		if (!r->tail && r->used == r->start) {
			GK_RAW(SYS_munmap, r->start, r->end - r->start);
			r->end = r->start;
			continue;
		}
		if (r->opened)
			GK_RAW(SYS_mprotect, pg, ((r->end + PAGE - 1) & ~(PAGE - 1)) - pg,
			       PROT_READ | PROT_EXEC);
		r->opened = 0;   /* a later patch round (dlopen) opens it again */
		gk_arch_flush_icache(r->start, r->end);
	}
}

void
gk_tramp_stats(struct gk_buf *b)
{
	unsigned long tails = 0, maps = 0, tail_bytes = 0, map_bytes = 0;
	for (int i = 0; i < nregions; i++) {
		if (regions[i].used == regions[i].start)
			continue;
		if (regions[i].tail) {
			tails++;
			tail_bytes += regions[i].used - regions[i].start;
		} else {
			maps++;
			map_bytes += regions[i].used - regions[i].start;
		}
	}
	gk_buf_str(b, "trampolines: ");
	gk_buf_dec(b, (long)maps);
	gk_buf_str(b, " mapped regions (");
	gk_buf_dec(b, (long)map_bytes);
	gk_buf_str(b, " B), ");
	gk_buf_dec(b, (long)tails);
	gk_buf_str(b, " segment tails (");
	gk_buf_dec(b, (long)tail_bytes);
	gk_buf_str(b, " B), mmap claims ");
	gk_buf_dec(b, (long)mmap_tries);
	gk_buf_str(b, " tried / ");
	gk_buf_dec(b, (long)mmap_misses);
	gk_buf_str(b, " missed");
}
