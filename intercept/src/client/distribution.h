/*
 * distribution.h - placement of metadata and chunks (docs/protocol.md 5).
 * Pure functions, no system calls: also built for the host test program.
 */
#ifndef GKFS_CLIENT_DISTRIBUTION_H
#define GKFS_CLIENT_DISTRIBUTION_H

#include <stddef.h>
#include <stdint.h>

#define GK_FNV64_OFFSET 0xcbf29ce484222325ULL
#define GK_FNV64_PRIME  0x100000001b3ULL

/* FNV-1a 64 over n bytes, continuing from h (GK_FNV64_OFFSET to start). */
uint64_t gk_fnv1a64(const void *data, size_t n, uint64_t h);

uint64_t gk_metadata_hash(const char *path);
uint64_t gk_chunk_hash(const char *data_key, uint64_t index);

/* Host index (0-based, hosts ordered by ascending id) of the owner. */
unsigned gk_metadata_owner(const char *path, unsigned n_hosts);
unsigned gk_chunk_owner(const char *data_key, uint64_t index, unsigned n_hosts);

/* One piece of a byte range split at chunk boundaries. */
struct gk_chunk_piece {
	uint64_t index;      /* chunk number */
	uint64_t off;        /* offset inside the chunk */
	uint64_t len;        /* bytes */
	uint64_t buf_off;    /* offset of this piece inside the caller's range */
};

/* Number of pieces [offset, offset+count) splits into. */
uint64_t gk_chunk_count(uint64_t offset, uint64_t count, uint64_t chunk_size);
/* The i-th piece (0 <= i < gk_chunk_count(...)). */
struct gk_chunk_piece gk_chunk_piece(uint64_t offset, uint64_t count,
                                     uint64_t chunk_size, uint64_t i);

#endif
