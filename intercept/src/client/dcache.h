/*
 * dcache.h - the readdir stat cache: a stat right after a readdir of the
 * same entries costs no RPC (docs/performance.md, "The readdir stat cache").
 *
 * A directory listing (gk_fwd_list_dir) asks for each entry's stat record
 * too (get_dirents "stats") and keeps them here, per directory, sorted:
 *   - bounded: at most LIBGKFS_STAT_CACHE_ENTRIES records (default 4096);
 *     entries of a listing past that are not kept (their stats are RPCs);
 *   - short-lived: a record answers only within LIBGKFS_STAT_CACHE_TTL_MS
 *     (default 1000; 0 turns the cache off) of the reply that carried it;
 *   - one-shot: a record answers one stat, then it is gone;
 *   - our own changes at once: every request of this process that changes
 *     a path (forward.c) drops it, its parent and, when it may be a
 *     directory, everything below, after its reply; a listing that was in
 *     flight meanwhile is not kept (gk_dcache_generation).
 * Another process's change is seen at most the TTL after the listing.
 * Thread-safe (one short mutex, never held across an RPC).
 */
#ifndef GKFS_CLIENT_DCACHE_H
#define GKFS_CLIENT_DCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* A stat record as cached: what stat/statx need (no cap, no target). */
struct gk_attr {
	uint32_t mode;
	uint64_t size, nlink, uid, gid;
	uint64_t atime_ns, mtime_ns, ctime_ns;
	char data_key[40];
	unsigned member;        /* the daemon it came from: used only if it owns the path */
};

/* 1 when the cache is on (TTL and size > 0; read from the environment once). */
int gk_dcache_enabled(void);
/* The most records it keeps (LIBGKFS_STAT_CACHE_ENTRIES). */
size_t gk_dcache_capacity(void);
/* Bumped by every change this process makes: a listing asked for before a
 * change is not kept. */
uint64_t gk_dcache_generation(void);
/* Keeps the records of directory `dir`: names sorted by strcmp, attrs[i]
 * may be NULL (none for that entry). Replaces an older listing of dir. */
void gk_dcache_fill(const char *dir, char *const *names, struct gk_attr *const *attrs, size_t n,
                    uint64_t generation);
/* 1 and *r filled (target and cap empty) when path's record is cached and
 * fresh; the record leaves the cache.  0 otherwise. */
int gk_dcache_take(const char *path, struct gk_record *r);
/* This process changed `path` (tree: maybe a directory, so everything
 * below it too). */
void gk_dcache_changed(const char *path, int tree);
/* The child of a fork starts empty (its own cache, its own lock). */
void gk_dcache_after_fork(void);

#endif
