/*
 * distribution.c - FNV-1a 64 placement, byte for byte as
 * gkfs_client/distribution.py and docs/protocol.md section 5; checked
 * against tests/vectors/distribution.tsv by tests/client_native.
 */
#include <string.h>

#include "distribution.h"

uint64_t
gk_fnv1a64(const void *data, size_t n, uint64_t h)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= GK_FNV64_PRIME;
	}
	return h;
}

uint64_t
gk_metadata_hash(const char *path)
{
	return gk_fnv1a64(path, strlen(path), GK_FNV64_OFFSET);
}

uint64_t
gk_chunk_hash(const char *data_key, uint64_t index)
{
	unsigned char tail[9];

	tail[0] = 0;
	for (int i = 0; i < 8; i++)        /* little-endian, whatever the CPU */
		tail[1 + i] = (unsigned char)(index >> (8 * i));
	return gk_fnv1a64(tail, sizeof(tail),
	                  gk_fnv1a64(data_key, strlen(data_key), GK_FNV64_OFFSET));
}

unsigned
gk_metadata_owner(const char *path, unsigned n_hosts)
{
	return n_hosts ? (unsigned)(gk_metadata_hash(path) % n_hosts) : 0;
}

unsigned
gk_chunk_owner(const char *data_key, uint64_t index, unsigned n_hosts)
{
	return n_hosts ? (unsigned)(gk_chunk_hash(data_key, index) % n_hosts) : 0;
}

uint64_t
gk_chunk_count(uint64_t offset, uint64_t count, uint64_t chunk_size)
{
	if (!count)
		return 0;
	return (offset + count - 1) / chunk_size - offset / chunk_size + 1;
}

struct gk_chunk_piece
gk_chunk_piece(uint64_t offset, uint64_t count, uint64_t chunk_size, uint64_t i)
{
	struct gk_chunk_piece p;
	uint64_t first = offset / chunk_size;
	uint64_t end = offset + count;
	uint64_t start;

	p.index = first + i;
	start = i ? p.index * chunk_size : offset;
	p.off = start - p.index * chunk_size;
	p.len = (p.index + 1) * chunk_size;
	if (p.len > end)
		p.len = end;
	p.len -= start;
	p.buf_off = start - offset;
	return p;
}
