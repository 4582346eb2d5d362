/*
 * local_stream_vectors.c - checks the C local stream framing and name
 * (intercept/src/client/local_stream.c) against tests/vectors/
 * local_stream.tsv, and prints its verdict on prefixes given in a second
 * file (lines "prefix <hex>": "prefix <hex> -1" for a broken limit, else
 * 0/1 and the frame count) for test_vectors.py to compare with the Python
 * decoder.  Built for the host.  Exit status 0 only when every vector row
 * matches.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local_stream.h"

static long
unhex(const char *h, size_t n, unsigned char *out, size_t size)
{
	if (n % 2 || n / 2 > size)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return (long)(n / 2);
}

static unsigned char a[1 << 16], b[1 << 16], want[1 << 16];

static int
check_name(char *uuid, char *member, char *addr_hex, char *name_hex)
{
	char name[GK_LS_NAME_MAX];
	long al = unhex(addr_hex, strlen(addr_hex), a, sizeof(a) - 1);
	long wl = unhex(name_hex, strlen(name_hex), want, sizeof(want));
	if (al < 0 || wl < 0)
		return 1;
	a[al] = 0;
	int n = gk_ls_name(name, sizeof(name), uuid, strtoull(member, NULL, 10), (char *)a);
	return n != wl || memcmp(name, want, (size_t)n) != 0;
}

/* frames: comma-separated hex ("-": empty); encodes prefix + frames and
 * decodes the prefix back */
static int
check_frames(char *frames, char *enc_hex)
{
	struct iovec data[16];
	size_t hlen = 0, blen = 0, off;
	int nd = -1;
	long wl = unhex(enc_hex, strlen(enc_hex), want, sizeof(want));

	for (char *f = strtok(frames, ","); f; f = strtok(NULL, ",")) {
		long l = strcmp(f, "-") ? unhex(f, strlen(f), b + blen, sizeof(b) - blen) : 0;
		if (l < 0 || nd >= 15)
			return 1;
		if (nd < 0)
			hlen = (size_t)l;
		else
			data[nd] = (struct iovec){b + blen, (size_t)l};
		blen += (size_t)l;
		nd++;
	}
	off = gk_ls_prefix(a, hlen, data, nd);
	memcpy(a + off, b, blen);
	if (wl != (long)(off + blen) || memcmp(a, want, (size_t)wl))
		return 1;
	uint32_t n;
	uint64_t total;
	size_t need;
	if (gk_ls_parse_prefix(a, (size_t)wl, &n, &total, &need) != 1 || n != (uint32_t)nd + 1 ||
	    total != blen || need != off || gk_ls_frame_len(a, 0) != hlen)
		return 1;
	for (int i = 0; i < nd; i++)
		if (gk_ls_frame_len(a, (uint32_t)i + 1) != data[i].iov_len)
			return 1;
	/* every shorter piece of the prefix asks for more, never fails */
	for (size_t k = 0; k < off; k++)
		if (gk_ls_parse_prefix(a, k, &n, &total, &need) != 0)
			return 1;
	return 0;
}

int
main(int argc, char **argv)
{
	static char line[1 << 18];
	long rows = 0, bad = 0;
	FILE *f = fopen(argc > 1 ? argv[1] : "tests/vectors/local_stream.tsv", "r");

	if (!f) {
		perror("open vectors");
		return 2;
	}
	while (fgets(line, sizeof(line), f)) {
		char *fld[6];
		int nf = 0;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = 0;
		for (char *t = strtok(line, "\t"); t && nf < 6; t = strtok(NULL, "\t"))
			fld[nf++] = t;
		char copy[64];
		snprintf(copy, sizeof(copy), "%s", nf ? fld[0] : "?");
		int wrong = 1;
		if (nf == 5 && !strcmp(fld[0], "name"))
			wrong = check_name(fld[1], fld[2], fld[3], fld[4]);
		else if (nf == 3 && !strcmp(fld[0], "frame"))
			wrong = check_frames(fld[1], fld[2]);
		rows++;
		if (wrong) {
			printf("MISMATCH row %ld (%s)\n", rows, copy);
			bad++;
		}
	}
	fclose(f);
	if (argc > 2 && (f = fopen(argv[2], "r"))) {
		static unsigned char p[1 << 17];
		while (fgets(line, sizeof(line), f)) {
			char *h = line + 7;   /* "prefix " */
			h[strcspn(h, "\n")] = 0;
			long l = unhex(h, strlen(h), p, sizeof(p));
			uint32_t n = 0;
			uint64_t total = 0;
			size_t need;
			int v = l < 0 ? -2 : gk_ls_parse_prefix(p, (size_t)l, &n, &total, &need);
			printf("prefix %s %d %u\n", h, v, v == 1 ? n : 0);
		}
		fclose(f);
	}
	printf("rows %ld mismatches %ld\n", rows, bad);
	return bad != 0;
}
