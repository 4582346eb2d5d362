/*
 * vectors.c - checks the C distribution (intercept/src/client/distribution.c)
 * against tests/vectors/distribution.tsv, row by row.  Built for the host
 * by tests/client_native/test_vectors.py.  Prints one line per mismatch and
 * a summary; exit status 0 only when every row matches.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distribution.h"

static int
unhex(const char *h, char *out, size_t size)
{
	size_t n = strlen(h);
	if (n % 2 || n / 2 >= size)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	return 0;
}

int
main(int argc, char **argv)
{
	char line[20000], s[10000];
	long rows = 0, bad = 0, meta = 0, chunk = 0;
	FILE *f = fopen(argc > 1 ? argv[1] : "tests/vectors/distribution.tsv", "r");

	if (!f) {
		perror("open vectors");
		return 2;
	}
	while (fgets(line, sizeof(line), f)) {
		char kind[4], hex[sizeof(s) * 2], chk[32], hash[32];
		unsigned long n_hosts, owner;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%3s\t%19999s\t%31s\t%lu\t%lu\t%31s", kind, hex, chk,
		           &n_hosts, &owner, hash) != 6 || unhex(hex, s, sizeof(s))) {
			printf("unparsable row: %s", line);
			bad++;
			continue;
		}
		uint64_t want = strtoull(hash, NULL, 16), got;
		unsigned got_owner;
		if (kind[0] == 'm') {
			got = gk_metadata_hash(s);
			got_owner = gk_metadata_owner(s, (unsigned)n_hosts);
			meta++;
		} else {
			uint64_t k = strtoull(chk, NULL, 10);
			got = gk_chunk_hash(s, k);
			got_owner = gk_chunk_owner(s, k, (unsigned)n_hosts);
			chunk++;
		}
		rows++;
		if (got != want || got_owner != owner) {
			printf("MISMATCH %s %s chunk %s n %lu: owner %u (want %lu) hash %016llx (want %s)\n",
			       kind, hex, chk, n_hosts, got_owner, owner,
			       (unsigned long long)got, hash);
			bad++;
		}
	}
	fclose(f);
	/* chunk splitting: the pieces tile the range exactly */
	for (uint64_t off = 0; off < 3000; off += 337)
		for (uint64_t cnt = 0; cnt < 5000; cnt += 611) {
			uint64_t n = gk_chunk_count(off, cnt, 1024), pos = off;
			for (uint64_t i = 0; i < n; i++) {
				struct gk_chunk_piece p = gk_chunk_piece(off, cnt, 1024, i);
				if (p.index * 1024 + p.off != pos || p.buf_off != pos - off ||
				    p.off + p.len > 1024 || !p.len) {
					printf("bad piece off %llu cnt %llu i %llu\n",
					       (unsigned long long)off, (unsigned long long)cnt,
					       (unsigned long long)i);
					bad++;
				}
				pos += p.len;
			}
			if (pos != off + cnt) {
				printf("pieces do not cover off %llu cnt %llu\n",
				       (unsigned long long)off, (unsigned long long)cnt);
				bad++;
			}
		}
	printf("rows %ld (metadata %ld, chunk %ld), mismatches %ld\n", rows, meta, chunk, bad);
	return bad || !meta || !chunk ? 1 : 0;
}
