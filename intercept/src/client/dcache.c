/*
 * dcache.c - the readdir stat cache (dcache.h).
 *
 * A few directory listings (LISTINGS), each the sorted names of one
 * directory with their records and an expiry; a lookup splits the path
 * into directory and name, finds the listing (hash, then strcmp) and
 * binary-searches the name.  Dropping a whole subtree (a rename or chmod of
 * a directory) scans only the listings, not the entries.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "dcache.h"
#include "distribution.h"
#include "log.h"

#define LISTINGS 64
#define DEFAULT_TTL_MS 1000
#define DEFAULT_ENTRIES 4096

struct dc_entry {
	const char *name;          /* in the listing's blob */
	struct gk_attr a;
	int live;
};

struct dc_listing {
	char *dir;                 /* NULL: free slot */
	uint64_t hash;
	uint64_t expires_ns;
	size_t n, live;
	struct dc_entry *e;        /* sorted by name (strcmp) */
	char *blob;                /* the names */
};

static pthread_mutex_t dc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dc_listing lists[LISTINGS];
static size_t total;           /* live entries in all listings */
static uint64_t generation;
static int configured;
static uint64_t ttl_ns;
static size_t max_entries;

/* A whole number from the environment; anything else is reported (once per
 * variable) and the default used: a typo must not pass unnoticed. */
static uint64_t
env_u64(const char *name, uint64_t dflt, int *warned)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return dflt;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || *s == '-' || *s == '+' || *s == ' ') {
		gkc_warn_once(warned, "ignoring %s=%s: not a whole number; using the default %llu",
		              name, s, (unsigned long long)dflt);
		return dflt;
	}
	return v;
}

static void
configure(void)
{
	if (__atomic_load_n(&configured, __ATOMIC_ACQUIRE))
		return;
	static int warned_ttl, warned_entries;

	ttl_ns = env_u64("LIBGKFS_STAT_CACHE_TTL_MS", DEFAULT_TTL_MS, &warned_ttl) * 1000000ULL;
	max_entries = env_u64("LIBGKFS_STAT_CACHE_ENTRIES", DEFAULT_ENTRIES, &warned_entries);
	__atomic_store_n(&configured, 1, __ATOMIC_RELEASE);
}

int
gk_dcache_enabled(void)
{
	configure();
	return ttl_ns && max_entries;
}

size_t
gk_dcache_capacity(void)
{
	configure();
	return max_entries;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	syscall_no_intercept(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t
gk_dcache_generation(void)
{
	return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

static void
drop(struct dc_listing *l)
{
	total -= l->live;
	free(l->dir);
	free(l->e);
	free(l->blob);
	memset(l, 0, sizeof(*l));
}

static uint64_t
dir_hash(const char *dir, size_t len)
{
	return gk_fnv1a64(dir, len, GK_FNV64_OFFSET);
}

static struct dc_listing *
find(const char *dir, size_t len)
{
	uint64_t h = dir_hash(dir, len);

	for (int i = 0; i < LISTINGS; i++)
		if (lists[i].dir && lists[i].hash == h && !strncmp(lists[i].dir, dir, len) &&
		    !lists[i].dir[len])
			return &lists[i];
	return NULL;
}

/* Expired listings go; returns a free slot (the oldest listing goes when
 * none is free). */
static struct dc_listing *
make_room(uint64_t now)
{
	struct dc_listing *free_slot = NULL, *oldest = NULL;

	for (int i = 0; i < LISTINGS; i++) {
		struct dc_listing *l = &lists[i];
		if (l->dir && (l->expires_ns <= now || !l->live))
			drop(l);
		if (!l->dir) {
			if (!free_slot)
				free_slot = l;
		} else if (!oldest || l->expires_ns < oldest->expires_ns) {
			oldest = l;
		}
	}
	if (!free_slot) {
		drop(oldest);
		free_slot = oldest;
	}
	return free_slot;
}

void
gk_dcache_fill(const char *dir, char *const *names, struct gk_attr *const *attrs, size_t n,
               uint64_t gen)
{
	size_t len = strlen(dir), keep = 0, bytes = 0;

	if (!gk_dcache_enabled() || !n)
		return;
	pthread_mutex_lock(&dc_lock);
	if (gen != generation)
		goto out;
	uint64_t now = now_ns();
	struct dc_listing *old = find(dir, len);
	if (old)
		drop(old);
	struct dc_listing *l = make_room(now);
	/* the first entries that fit the bound, in name order */
	for (size_t i = 0; i < n && total + keep < max_entries; i++)
		if (attrs[i]) {
			keep++;
			bytes += strlen(names[i]) + 1;
		}
	if (!keep)
		goto out;
	l->e = calloc(keep, sizeof(*l->e));
	l->blob = malloc(bytes);
	l->dir = strdup(dir);
	if (!l->e || !l->blob || !l->dir) {
		free(l->e);
		free(l->blob);
		free(l->dir);
		memset(l, 0, sizeof(*l));
		goto out;
	}
	char *p = l->blob;
	for (size_t i = 0, k = 0; i < n && k < keep; i++) {
		if (!attrs[i])
			continue;
		size_t m = strlen(names[i]) + 1;
		memcpy(p, names[i], m);
		l->e[k].name = p;
		l->e[k].a = *attrs[i];
		l->e[k].live = 1;
		p += m;
		k++;
	}
	l->n = l->live = keep;
	l->hash = dir_hash(dir, len);
	l->expires_ns = now + ttl_ns;
	total += keep;
out:
	pthread_mutex_unlock(&dc_lock);
}

static struct dc_entry *
lookup(struct dc_listing *l, const char *name)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->e[mid].name, name);
		if (!c)
			return &l->e[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* (directory length, name) of a canonical path; "/" has no entry. */
static const char *
split(const char *path, size_t *dirlen)
{
	const char *slash = strrchr(path, '/');

	if (!slash || !slash[1])
		return NULL;
	*dirlen = slash == path ? 1 : (size_t)(slash - path);
	return slash + 1;
}

/* Takes path's entry out; 1 with *a when it was live and fresh. */
static int
take_locked(const char *path, struct gk_attr *a, uint64_t now)
{
	size_t dl;
	const char *name = split(path, &dl);

	if (!name)
		return 0;
	struct dc_listing *l = find(path, dl);
	if (!l)
		return 0;
	struct dc_entry *e = lookup(l, name);
	if (!e || !e->live)
		return 0;
	e->live = 0;
	l->live--;
	total--;
	if (a)
		*a = e->a;
	int fresh = now < l->expires_ns;
	if (!l->live)
		drop(l);
	return fresh;
}

int
gk_dcache_take(const char *path, struct gk_record *r)
{
	struct gk_attr a;
	int hit;

	if (!__atomic_load_n(&total, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&dc_lock);
	hit = total && take_locked(path, &a, now_ns());
	pthread_mutex_unlock(&dc_lock);
	/* A record a daemon holds for a path it does not own (an older
	 * placement) is listed, but a stat goes to the owner: never from it. */
	if (!hit || (gkc_cfg.n_hosts > 1 && gk_metadata_owner(path, gkc_cfg.n_hosts) != a.member))
		return 0;
	r->mode = a.mode;
	r->size = a.size;
	r->nlink = a.nlink;
	r->uid = a.uid;
	r->gid = a.gid;
	r->atime_ns = a.atime_ns;
	r->mtime_ns = a.mtime_ns;
	r->ctime_ns = a.ctime_ns;
	memcpy(r->data_key, a.data_key, sizeof(a.data_key));
	r->cap[0] = '\0';
	r->target[0] = '\0';
	r->held = 0;
	return 1;
}

void
gk_dcache_changed(const char *path, int tree)
{
	char parent[GK_PATH_MAX + 1];
	size_t dl, plen = strlen(path);

	if (!gk_dcache_enabled())
		return;
	pthread_mutex_lock(&dc_lock);
	generation++;
	if (!total)
		goto out;
	take_locked(path, NULL, 0);
	if (split(path, &dl) && dl < sizeof(parent)) {
		memcpy(parent, path, dl);
		parent[dl] = '\0';
		take_locked(parent, NULL, 0);
	}
	if (tree)
		for (int i = 0; i < LISTINGS; i++) {
			const char *d = lists[i].dir;
			if (d && (!strcmp(path, "/") ||
			          (!strncmp(d, path, plen) && (d[plen] == '\0' || d[plen] == '/'))))
				drop(&lists[i]);
		}
out:
	pthread_mutex_unlock(&dc_lock);
}

void
gk_dcache_after_fork(void)
{
	pthread_mutex_init(&dc_lock, NULL);
	for (int i = 0; i < LISTINGS; i++)
		if (lists[i].dir)
			drop(&lists[i]);
	total = 0;
	generation++;
}
