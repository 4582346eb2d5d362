/*
 * mmap_shared.c - MAP_SHARED + PROT_WRITE mappings of gkfs files.
 *
 * The kernel cannot page a gkfs file, so such a mapping is an anonymous
 * shared mapping filled with the file's bytes at mmap time, plus a private
 * snapshot of what was read.  Write-back compares the two and sends only
 * the byte runs this process changed (never bytes it did not touch, which
 * may be stale: another process may have written them meanwhile), clamped
 * to the file's current size (as the kernel drops stores beyond EOF), then
 * refreshes the snapshot.  It happens at msync (any flags; MS_INVALIDATE
 * also reloads the bytes it did not change from the file), at munmap of
 * any part of the mapping, when a descriptor of the file is closed, and at
 * exit.  Other processes see the changes in the file from then on (read,
 * a new mmap); their own mappings made earlier keep what they read until
 * their msync(MS_INVALIDATE).  A forked child shares the mapping's memory
 * (MAP_SHARED) and writes back what changed against its copy of the
 * snapshot.  mremap of such a mapping is refused (EINVAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "fdtable.h"
#include "forward.h"
#include "log.h"
#include "mmap_shared.h"

#define MAX_REGIONS 256
#define PAGE 4096UL

struct region {
	char *addr;
	size_t len;
	int64_t off;             /* file offset of addr */
	char *snap;              /* private snapshot of the file bytes */
	struct gk_file *f;       /* a reference: the mapping outlives close */
};

static pthread_mutex_t regions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct region regions[MAX_REGIONS];
static int n_regions;

static int
is_err(long p)
{
	return p < 0 && p > -4096;
}

long
gk_mmap_shared(struct gk_file *f, void *addr, size_t len, int prot, int flags, int64_t off)
{
	int acc = f->ofd->flags & O_ACCMODE;
	long map, snap;
	ssize_t n;

	if (acc != O_RDWR)
		return -EACCES;      /* a shared writable mapping needs O_RDWR */
	if (f->ofd->is_dir)
		return -ENODEV;
	if (off < 0 || (off & (PAGE - 1)) || !len)
		return -EINVAL;
	len = (len + PAGE - 1) & ~(PAGE - 1);
	map = syscall_no_intercept(SYS_mmap, addr, len, PROT_READ | PROT_WRITE,
	                           (flags & ~(MAP_SHARED | MAP_SHARED_VALIDATE | MAP_PRIVATE)) |
	                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (is_err(map))
		return map;
	snap = syscall_no_intercept(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE,
	                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (is_err(snap)) {
		syscall_no_intercept(SYS_munmap, map, len);
		return snap;
	}
	/* the file's bytes (short at EOF: the rest stays zero, as the kernel's) */
	struct gk_record r;
	n = gk_fwd_fstat(f->ofd->path, f->ofd->data_key, &r);
	if (!n && (uint64_t)off < r.size) {
		uint64_t want = r.size - (uint64_t)off < len ? r.size - (uint64_t)off : len;
		n = gk_fwd_read(f->ofd->data_key, f->ofd->cap, (void *)map, (uint64_t)off, want, r.size);
	}
	if (n < 0) {
		syscall_no_intercept(SYS_munmap, map, len);
		syscall_no_intercept(SYS_munmap, snap, len);
		return n;
	}
	memcpy((void *)snap, (void *)map, len);
	if (prot != (PROT_READ | PROT_WRITE))
		syscall_no_intercept(SYS_mprotect, map, len, prot);
	pthread_mutex_lock(&regions_lock);
	if (n_regions == MAX_REGIONS) {
		pthread_mutex_unlock(&regions_lock);
		syscall_no_intercept(SYS_munmap, map, len);
		syscall_no_intercept(SYS_munmap, snap, len);
		return -ENOMEM;
	}
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	regions[n_regions++] = (struct region){(char *)map, len, off, (char *)snap, f};
	pthread_mutex_unlock(&regions_lock);
	GKC_LOG(GKC_INFO, "mmap shared %s [%lld +%zu] at %#lx", f->ofd->path, (long long)off, len, map);
	return map;
}

/* Sends the changed byte runs of [from, to) (offsets inside the region). */
static int
write_back(struct region *g, size_t from, size_t to)
{
	struct gk_record r;
	int rc = gk_fwd_fstat(g->f->ofd->path, g->f->ofd->data_key, &r);
	uint64_t end;

	if (rc)
		return rc;
	/* bytes beyond the file's end are not stored, as with the kernel */
	end = r.size > (uint64_t)g->off ? r.size - (uint64_t)g->off : 0;
	if (to > end)
		to = end;
	if (!r.data_key[0])
		memcpy(r.data_key, g->f->ofd->data_key, sizeof(r.data_key));
	size_t i = from;
	while (i < to) {
		/* skip equal pages quickly, then equal bytes */
		if ((i & (PAGE - 1)) == 0 && i + PAGE <= to && !memcmp(g->addr + i, g->snap + i, PAGE)) {
			i += PAGE;
			continue;
		}
		if (g->addr[i] == g->snap[i]) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < to && g->addr[j] != g->snap[j])
			j++;
		ssize_t n = gk_fwd_write(r.data_key, g->f->ofd->cap, g->addr + i, (uint64_t)g->off + i, j - i);
		if (n < 0)
			return (int)n;
		memcpy(g->snap + i, g->addr + i, j - i);
		i = j;
	}
	return 0;
}

/* Reloads the bytes of [from, to) this process has not changed. */
static int
invalidate(struct region *g, size_t from, size_t to)
{
	struct gk_record r;
	size_t len = to - from;
	int rc = gk_fwd_fstat(g->f->ofd->path, g->f->ofd->data_key, &r);

	if (rc)
		return rc;
	char *fresh = malloc(len);
	if (!fresh)
		return -ENOMEM;
	memset(fresh, 0, len);
	uint64_t at = (uint64_t)g->off + from;
	if (at < r.size) {
		uint64_t want = r.size - at < len ? r.size - at : len;
		ssize_t n = gk_fwd_read(r.data_key[0] ? r.data_key : g->f->ofd->data_key, g->f->ofd->cap, fresh, at,
		                        want, r.size);
		if (n < 0) {
			free(fresh);
			return (int)n;
		}
	}
	for (size_t i = 0; i < len; i++)
		if (g->addr[from + i] == g->snap[from + i])
			g->addr[from + i] = g->snap[from + i] = fresh[i];
	free(fresh);
	return 0;
}

static int
overlap(const struct region *g, const char *a, size_t len, size_t *from, size_t *to)
{
	const char *lo = a > g->addr ? a : g->addr;
	const char *hi = a + len < g->addr + g->len ? a + len : g->addr + g->len;

	if (lo >= hi)
		return 0;
	*from = (size_t)(lo - g->addr);
	*to = (size_t)(hi - g->addr);
	return 1;
}

static int
any_regions(void)
{
	return __atomic_load_n(&n_regions, __ATOMIC_RELAXED) != 0;
}

int
gk_mmap_msync(void *addr, size_t len, int flags, long *res)
{
	size_t from, to;
	int hit = 0, rc = 0;

	if (!any_regions())
		return 0;
	pthread_mutex_lock(&regions_lock);
	for (int k = 0; k < n_regions; k++) {
		if (!overlap(&regions[k], addr, len, &from, &to))
			continue;
		hit = 1;
		int e = write_back(&regions[k], from, to);
		if (!e && (flags & MS_INVALIDATE))
			e = invalidate(&regions[k], from, to);
		if (e && !rc)
			rc = e;
	}
	pthread_mutex_unlock(&regions_lock);
	if (!hit)
		return 0;
	/* the kernel's own checks (alignment, flags, unmapped ranges) */
	long k = syscall_no_intercept(SYS_msync, addr, len, flags & ~MS_INVALIDATE);
	*res = rc ? (rc == -ENOSPC ? -ENOSPC : -EIO) : k;
	return 1;
}

static void
drop_region(int k)
{
	struct gk_file *f = regions[k].f;
	regions[k] = regions[--n_regions];
	gk_file_put(f);
}

int
gk_mmap_munmap(void *addr, size_t len, long *res)
{
	size_t from, to;
	int hit = 0, rc = 0;

	if (!any_regions())
		return 0;
	if (((unsigned long)addr & (PAGE - 1)) || !len)
		return 0;              /* the kernel's EINVAL */
	len = (len + PAGE - 1) & ~(PAGE - 1);
	pthread_mutex_lock(&regions_lock);
	for (int k = 0; k < n_regions; k++) {
		struct region *g = &regions[k];
		if (!overlap(g, addr, len, &from, &to))
			continue;
		hit = 1;
		int e = write_back(g, from, to);
		if (e && !rc)
			rc = e;
		syscall_no_intercept(SYS_munmap, g->snap + from, to - from);
		if (from == 0 && to == g->len) {
			drop_region(k--);
		} else if (from == 0) {
			g->addr += to; g->snap += to; g->off += (int64_t)to; g->len -= to;
		} else if (to == g->len) {
			g->len = from;
		} else if (n_regions < MAX_REGIONS) {
			/* a hole in the middle: the tail becomes its own region */
			struct region tail = {g->addr + to, g->len - to, g->off + (int64_t)to,
			                      g->snap + to, g->f};
			__atomic_add_fetch(&g->f->refs, 1, __ATOMIC_RELAXED);
			g->len = from;
			regions[n_regions++] = tail;
		} else {
			g->len = from;    /* table full: the tail is no longer written back */
			GKC_LOG(GKC_ERR, "munmap: too many shared gkfs mappings, a tail is not tracked");
		}
	}
	pthread_mutex_unlock(&regions_lock);
	if (!hit)
		return 0;
	long k = syscall_no_intercept(SYS_munmap, addr, len);
	if (rc)
		GKC_LOG(GKC_ERR, "munmap: write-back of a shared gkfs mapping failed: %d", rc);
	*res = k;       /* munmap cannot report a lost write-back; msync can */
	return 1;
}

void
gk_mmap_on_close(struct gk_file *f)
{
	if (!any_regions())
		return;
	pthread_mutex_lock(&regions_lock);
	for (int k = 0; k < n_regions; k++)
		if (regions[k].f == f || !strcmp(regions[k].f->ofd->data_key, f->ofd->data_key))
			write_back(&regions[k], 0, regions[k].len);
	pthread_mutex_unlock(&regions_lock);
}

void
gk_mmap_at_exit(void)
{
	if (!any_regions())
		return;
	pthread_mutex_lock(&regions_lock);
	for (int k = 0; k < n_regions; k++)
		write_back(&regions[k], 0, regions[k].len);
	pthread_mutex_unlock(&regions_lock);
}

int
gk_mmap_mremap(void *addr, size_t len)
{
	size_t from, to;
	int hit = 0;

	if (!any_regions())
		return 0;
	pthread_mutex_lock(&regions_lock);
	for (int k = 0; k < n_regions && !hit; k++)
		hit = overlap(&regions[k], addr, len ? len : 1, &from, &to);
	pthread_mutex_unlock(&regions_lock);
	return hit;
}

void
gk_mmap_after_fork(void)
{
	pthread_mutex_init(&regions_lock, NULL);
}
