/*
 * util.c - helpers that must not enter libc's (patched) system calls.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime.h"

/* Work buffers (the patcher's, section headers, the plan cache's) are
 * asked for 16 GiB below this code, a hint the kernel takes when that
 * space is free: left to itself it would put them right next to the
 * libraries (below them on Linux, above them under qemu-user), in the
 * holes trampolines are claimed from, and the maps file is read and holes
 * claimed only when a site needs one (tramp_mem.c), possibly after the
 * buffers exist. 16 GiB is beyond any trampoline's reach (2 GiB). */
#define GK_MAP_AWAY (16UL << 30)

void *
gk_map(size_t len)
{
	uint64_t self = (uint64_t)(uintptr_t)&gk_map;
	uint64_t hint = self > 2 * GK_MAP_AWAY ? (self - GK_MAP_AWAY) & ~4095UL : 0;
	long r = GK_RAW(SYS_mmap, hint, len, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r < 0 && r > -4096)
		return NULL;
	gk_tramp_note_busy((uint64_t)r, (uint64_t)r + len);
	return (void *)r;
}

void
gk_unmap(void *p, size_t len)
{
	if (p)
		GK_RAW(SYS_munmap, p, len);
}

/*
 * getenv for the start-up path: the constructors (the core's and the gkfs
 * client's) run in every process, most of which never touch gkfs.  A
 * plain loop over environ, because under an emulator (qemu-user) every
 * piece of code run for the first time is translated first, and libc's
 * getenv drags in its word-at-a-time strlen and strncmp (some 100 blocks
 * to translate; this is 5).  Same answer as getenv: the first NAME=.
 */
const char *
gk_getenv(const char *name)
{
	extern char **environ;

	for (char **e = environ; e && *e; e++) {
		const char *v = *e, *n = name;
		while (*n && *v == *n) {
			v++;
			n++;
		}
		if (!*n && *v == '=')
			return v + 1;
	}
	return NULL;
}

/*
 * Several variables in one pass over environ: vals[k] (NULL on entry) is
 * set to what gk_getenv(names[k]) returns (the first NAME=, else stays
 * NULL).  For the start-up path: each call of gk_getenv ends a block in
 * its caller (the return), and the constructors ask for some fifteen
 * variables; one pass for all of a caller's is the same few blocks
 * however many it asks for (the loops are written for few blocks too:
 * one test per character, the match kept without a branch).
 */
void
gk_getenv_many(const char *const *names, const char **vals, int n)
{
	extern char **environ;
	static char *none[1];
	char **e = environ;

	e = e ? e : none;
	for (; *e; e++) {
		int k = 0;
		do {   /* n >= 1: every caller asks for something */
			const unsigned char *p = (const unsigned char *)names[k];
			const unsigned char *v = (const unsigned char *)*e;
			unsigned a, b, go;

			/* stops at the name's end or the first difference (an
			 * entry shorter than the name differs at its NUL); one
			 * test per character */
			do {
				a = *p++;
				b = *v++;
				go = (a ^ b) | (a == 0);
			} while (go == 0);
			uintptr_t hit = -(uintptr_t)((a == 0) & (b == '=') & (vals[k] == NULL));
			vals[k] = (const char *)(((uintptr_t)v & hit) |
			                         ((uintptr_t)vals[k] & ~hit));
		} while (++k < n);
	}
}

const char *
gk_basename(const char *path)
{
	const char *base = path;
	/* not strrchr (gk_getenv: why); no branch in the loop (a block less
	 * to translate at every start) */
	for (const char *p = path; *p; p++) {
		uintptr_t m = -(uintptr_t)(*p == '/');
		base = (const char *)(((uintptr_t)(p + 1) & m) | ((uintptr_t)base & ~m));
	}
	return base;
}

/* Shell-style glob: '*' and '?' only; enough for sonames like libc.so*. */
int
gk_glob(const char *pat, const char *s, size_t slen)
{
	size_t si = 0;
	const char *star = NULL;
	size_t star_si = 0;

	while (si < slen) {
		if (*pat == '*') {
			star = pat++;
			star_si = si;
		} else if (*pat && (*pat == '?' || *pat == s[si])) {
			pat++;
			si++;
		} else if (star) {
			pat = star + 1;
			si = ++star_si;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}
