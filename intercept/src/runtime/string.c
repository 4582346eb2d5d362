/*
 * string.c - the core's own memcpy, memset and strlen (hidden: every call
 * from this library, the compiler's own included, binds here; nothing
 * outside sees them).
 *
 * Why not libc's: the constructor runs in every process, and under an
 * emulator (qemu-user) every piece of code run for the first time is
 * translated first, at several microseconds a block.  glibc's versions
 * (an IFUNC-selected memcpy, word-at-a-time strlen and memset with their
 * alignment cases) are ~40 blocks that a process which never touches gkfs
 * would otherwise translate for the constructor alone; these are a few.
 * They also take no lock, TLS or IFUNC, so a hook may use them anywhere.
 *
 * Copies and fills from 4 KiB on (the client copies read data with
 * memcpy) go to libc's own, through its checking entry points (which
 * call the same, possibly vectorised, code): start-up never makes one.
 * Below that, 8-byte words when source and destination share an
 * alignment, else aligned loads merged by shifts, as glibc's generic C
 * memcpy does.
 */
#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

/* This file must not turn its own loops back into calls to itself. */
#pragma GCC optimize("no-tree-loop-distribute-patterns")

#define WORD sizeof(uint64_t)
typedef uint64_t __attribute__((may_alias)) word_t;
#define GK_HIDDEN __attribute__((visibility("hidden")))

#define LARGE 4096
/* Below this a byte loop: the start-up's copies (trampolines, windows,
 * names) then use two blocks of this file, not every case of it. */
#define SMALL 64
void *__memcpy_chk(void *dst, const void *src, size_t n, size_t dstlen);
void *__memset_chk(void *dst, int c, size_t n, size_t dstlen);

GK_HIDDEN void *memcpy(void *restrict dst, const void *restrict src, size_t n);
GK_HIDDEN void *memset(void *dst, int c, size_t n);
GK_HIDDEN size_t strlen(const char *s);

void *
memcpy(void *restrict dst, const void *restrict src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (n >= LARGE)
		return __memcpy_chk(dst, src, n, n);
	if (n >= SMALL) {
		while ((uintptr_t)d & (WORD - 1)) {
			*d++ = *s++;
			n--;
		}
		word_t *dw = (word_t *)(void *)d;
		unsigned off = (unsigned)((uintptr_t)s & (WORD - 1));
		if (off == 0) {
			const word_t *sw = (const word_t *)(const void *)s;
			for (; n >= 4 * WORD; n -= 4 * WORD, dw += 4, sw += 4) {
				dw[0] = sw[0];
				dw[1] = sw[1];
				dw[2] = sw[2];
				dw[3] = sw[3];
			}
			for (; n >= WORD; n -= WORD)
				*dw++ = *sw++;
			s = (const unsigned char *)sw;
		} else {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			/* Aligned loads only: each word read holds at least one
			 * byte of the source, so no read crosses into a page the
			 * source does not touch. */
			const word_t *sw = (const word_t *)(const void *)(s - off);
			unsigned lo = off * 8, hi = 64 - lo;
			uint64_t a = *sw++;
			for (; n >= WORD; n -= WORD) {
				uint64_t b = *sw++;
				*dw++ = (a >> lo) | (b << hi);
				a = b;
				s += WORD;
			}
#endif
		}
		d = (unsigned char *)dw;
	}
	while (n--)
		*d++ = *s++;
	return dst;
}

void *
memset(void *dst, int c, size_t n)
{
	unsigned char *d = dst;

	if (n >= LARGE)
		return __memset_chk(dst, c, n, n);
	if (n >= SMALL) {
		uint64_t w = (unsigned char)c * 0x0101010101010101ULL;
		while ((uintptr_t)d & (WORD - 1)) {
			*d++ = (unsigned char)c;
			n--;
		}
		word_t *dw = (word_t *)(void *)d;
		for (; n >= WORD; n -= WORD)
			*dw++ = w;
		d = (unsigned char *)dw;
	}
	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

size_t
strlen(const char *s)
{
	const char *p = s;

	while (*p)
		p++;
	return (size_t)(p - s);
}

/* The constructor's own zeroing and copying (its object list, the process
 * image's key, build-ids): one loop each, where memset's and memcpy's
 * cases are some 16 blocks an emulator translates at every start for
 * these few hundred bytes.  Words: p 8-aligned, n a multiple of 8. */
void
gk_zero_words(void *p, size_t n)
{
	word_t *w = p;

	for (size_t i = 0; i < n / WORD; i++)
		w[i] = 0;
}

void
gk_copy_bytes(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
}

/* No early exit: one loop block, the same for every caller. */
int
gk_bytes_differ(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}
