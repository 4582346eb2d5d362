/*
 * local_stream.c - name and framing of the local stream (local_stream.h),
 * byte for byte as gkfs_client/local_stream.py; checked against
 * tests/vectors/local_stream.tsv by tests/client_native/test_vectors.py.
 */
#include <stdio.h>
#include <string.h>

#include "distribution.h"
#include "local_stream.h"

static const char name_prefix[] = "gkfs-local/";   /* after the leading NUL */

int
gk_ls_name(char *out, size_t size, const char *uuid, uint64_t member_id,
           const char *address)
{
	char key[32];
	int k = snprintf(key, sizeof(key), "%llu\n", (unsigned long long)member_id);
	/* FNV-1a 64 of "<member id>\n<address>", in two pieces */
	uint64_t h = gk_fnv1a64(key, (size_t)k, GK_FNV64_OFFSET);
	h = gk_fnv1a64(address, strlen(address), h);
	/* +1: snprintf's NUL, which is not part of the name */
	char tmp[GK_LS_NAME_MAX + 1];
	int n = snprintf(tmp, sizeof(tmp), "%c%s%s/%016llx", '\0', name_prefix, uuid,
	                 (unsigned long long)h);
	if (n < 0 || (size_t)n >= sizeof(tmp) || (size_t)n > size)
		return -1;
	memcpy(out, tmp, (size_t)n);
	return n;
}

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

size_t
gk_ls_prefix(unsigned char *out, size_t header_len, const struct iovec *data, int ndata)
{
	put_u32(out, (uint32_t)(1 + ndata));
	put_u32(out + 4, (uint32_t)header_len);
	for (int i = 0; i < ndata; i++)
		put_u32(out + 8 + 4 * i, (uint32_t)data[i].iov_len);
	return 8 + 4 * (size_t)ndata;
}

int
gk_ls_parse_prefix(const unsigned char *p, size_t have, uint32_t *nframes,
                   uint64_t *total, size_t *need)
{
	uint32_t n;
	uint64_t sum = 0;

	*need = 4;
	if (have < 4)
		return 0;
	n = get_u32(p);
	if (n < 1 || n > GK_LS_MAX_FRAMES)
		return -1;
	*need = 4 + 4 * (size_t)n;
	if (have < *need)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = get_u32(p + 4 + 4 * i);
		if (len > GK_LS_MAX_FRAME)
			return -1;
		sum += len;
	}
	if (sum > GK_LS_MAX_MESSAGE)
		return -1;
	*nframes = n;
	*total = sum;
	return 1;
}

uint32_t
gk_ls_frame_len(const unsigned char *p, uint32_t i)
{
	return get_u32(p + 4 + 4 * i);
}
