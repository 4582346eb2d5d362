/*
 * The core's own memcpy and memset (src/runtime/string.c, compiled into
 * this program: they replace libc's here as in the core) against byte
 * loops: every source and destination alignment, sizes around every
 * boundary of their cases (word loop, 4-word loop, shift-merged words,
 * libc's own from 4 KiB), guard bytes around each copy untouched.
 * Prints "ok" or the first difference.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static unsigned char src[3 * 8192], dst[3 * 8192], want[3 * 8192];

static int check(size_t n, const char *what, size_t so, size_t doff)
{
	for (size_t i = 0; i < sizeof(dst); i++)
		if (dst[i] != want[i]) {
			printf("%s n=%zu src+%zu dst+%zu: byte %zu is %u, want %u\n", what, n, so,
			       doff, i, dst[i], want[i]);
			return 1;
		}
	return 0;
}

int main(void)
{
	static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
	                               100, 255, 256, 1000, 4095, 4096, 4097, 8191};
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7 + 3);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		for (size_t so = 0; so < 8; so++)
			for (size_t doff = 0; doff < 8; doff++) {
				size_t n = sizes[k];
				volatile size_t vn = n;   /* no constant-size inlining */
				for (size_t i = 0; i < sizeof(dst); i++)
					want[i] = dst[i] = (unsigned char)(0xa5 ^ i);
				for (size_t i = 0; i < n; i++)
					want[64 + doff + i] = src[64 + so + i];
				memcpy(dst + 64 + doff, src + 64 + so, vn);
				if (check(n, "memcpy", so, doff))
					return 1;
				for (size_t i = 0; i < n; i++)
					want[64 + doff + i] = (unsigned char)(0x5a + so);
				memset(dst + 64 + doff, 0x5a + (int)so, vn);
				if (check(n, "memset", so, doff))
					return 1;
			}
	if (strlen("") != 0 || strlen("gkfs") != 4) {
		printf("strlen\n");
		return 1;
	}
	printf("ok\n");
	return 0;
}
