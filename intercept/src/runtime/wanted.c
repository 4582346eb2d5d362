/*
 * wanted.c - which calls reach the dispatcher at all (the entry's fast
 * path, arch_runtime.h "Which calls").
 *
 * By default every call does: a hook written against syscall_intercept's
 * API says nothing of what it wants, so it sees every call, as with the
 * original.  Only calls that nothing here would act on are sent straight
 * to the kernel:
 *   - calls INTERCEPT_SYS_INCLUDE/EXCLUDE leave unhooked (the dispatcher
 *     would only perform them);
 *   - with a hook linked into the core that declared its calls (the gkfs
 *     client, gk_want_declare): every call outside the declaration, and
 *     a descriptor call on a descriptor it never marked.
 * close has a class of its own (GK_WANT_FD_KEPT_ARG0): it reaches the
 * dispatcher while the hook keeps any record of the descriptor, a second
 * table whose bits the hook's parts set and clear each for its own
 * (gk_want_fd_keep; a gkfs descriptor's bit comes with gk_want_fd_mark).
 * Whatever is declared, the clone family (the post-clone hooks, a vfork's
 * in-hook flag) always goes through the dispatcher, and with INTERCEPT_LOG
 * every call does (the log shows every call, the unhooked ones too).
 * A hook linked into the core declares before patching (gk_hook_declare,
 * called by the constructor), so a site whose number is static and never
 * wanted can stay the program's own ecall (patcher.c).
 * The class table is written before any other thread exists (constructors)
 * and never changes after; descriptor marks change at run time (byte
 * stores: a reader sees the old or the new byte, and a hook marks a
 * descriptor before it hands its number to the program).
 */
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

unsigned char gk_want[GK_WANT_NR];
int gk_want_declared;
unsigned char gk_want_fd[GK_WANT_FDS];
uint32_t gk_want_fd_kept[GK_WANT_FDS / 4] __attribute__((aligned(8)));

_Static_assert(GK_WANT_NR >= GK_MAX_SYSNO && !(GK_WANT_NR & (GK_WANT_NR - 1)),
               "a class for every number the filters know; a power of two");

/* The calls that make a process or a thread: always the hook's, whatever
 * was declared or filtered (gk_want_init keeps them, gk_want_declare puts
 * them back, gk_want_quiet never quiets them). */
static const long clone_calls[] = {
	SYS_clone,
#ifdef SYS_clone3
	SYS_clone3,
#endif
#ifdef SYS_fork
	SYS_fork,
#endif
#ifdef SYS_vfork
	SYS_vfork,
#endif
};
#define NCLONE (sizeof(clone_calls) / sizeof(clone_calls[0]))

static int
clone_family(long nr)
{
	int hit = 0;

	for (size_t i = 0; i < NCLONE; i++)
		hit |= nr == clone_calls[i];
	return hit;
}

void
gk_want_init(void)
{
	/* the usual case in one store: no filter, or the log */
	memset(gk_want, GK_WANT_ALWAYS, sizeof(gk_want));
	if (!gk_cfg.sys_filter || gk_log_enabled())
		return;
	for (long nr = 0; nr < GK_MAX_SYSNO; nr++)
		if (!gk_sys_hooked(nr) && !clone_family(nr))
			gk_want[nr] = GK_WANT_NEVER;
}

void
gk_want_declare(const unsigned char *classes, size_t n)
{
	if (gk_log_enabled())
		return;
	gk_want_declared = 1;
	/* Every process runs this: one loop without branches (fewer blocks
	 * for an emulator to translate), the clone family put back after
	 * (gk_want_init never takes it out). */
	_Static_assert(GK_WANT_NEVER == 0, "an entry filtered out stays 0 below");
	if (n > GK_MAX_SYSNO)
		n = GK_MAX_SYSNO;
	for (size_t nr = 0; nr < n; nr++) {
		unsigned c = classes[nr], known = c <= GK_WANT_FD_KEPT_ARG0;
		c = (c & -known) | (GK_WANT_ALWAYS & -(known ^ 1));   /* unknown: always */
		/* a number the filters took out stays out */
		gk_want[nr] = (unsigned char)(c & -(unsigned)(gk_want[nr] != GK_WANT_NEVER));
	}
	memset(gk_want + n, GK_WANT_NEVER, GK_MAX_SYSNO - n);
	for (size_t i = 0; i < NCLONE; i++)
		gk_want[clone_calls[i]] = GK_WANT_ALWAYS;
}

void
gk_want_restore(const unsigned char *table, int declared)
{
	/* a plain loop: memcpy's word paths would be translated for this */
	for (size_t nr = 0; nr < GK_MAX_SYSNO; nr++)
		gk_want[nr] = table[nr];
	gk_want_declared = declared;
}

unsigned char gk_want_quieted[GK_WANT_NR];

void
gk_want_quiet(long nr)
{
	/* or'ed, not a chain: each test of one is a block to translate */
	if (!gk_want_declared | (nr < 0) | (nr >= GK_WANT_NR) ||
	    gk_want_quieted[nr] | (gk_want[nr] == GK_WANT_NEVER) | clone_family(nr))
		return;
	gk_want_quieted[nr] = (unsigned char)(gk_want[nr] + 1);
	__atomic_store_n(&gk_want[nr], GK_WANT_NEVER, __ATOMIC_RELEASE);
}

void
gk_want_wake(long nr)
{
	unsigned char q;

	if (nr < 0 || nr >= GK_WANT_NR ||
	    !(q = __atomic_load_n(&gk_want_quieted[nr], __ATOMIC_RELAXED)))
		return;
	__atomic_store_n(&gk_want[nr], (unsigned char)(q - 1), __ATOMIC_RELEASE);
}

/* Byte fd of gk_want_fd_kept is bits of its word: each owner's bit
 * flipped with a word-sized atomic, never a byte read-modify-write that
 * could undo another owner's concurrent change. */
void
gk_want_fd_keep(long fd, unsigned bit, int on)
{
	uint32_t *w, m;

	if (fd < 0 || fd >= GK_WANT_FDS)
		return;
	w = &gk_want_fd_kept[fd / 4];
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	m = (uint32_t)(bit & 0xff) << (8 * (fd % 4));
#else
	m = (uint32_t)(bit & 0xff) << (8 * (3 - fd % 4));
#endif
	if (on)
		__atomic_fetch_or(w, m, __ATOMIC_RELEASE);
	else
		__atomic_fetch_and(w, ~m, __ATOMIC_RELEASE);
}

void
gk_want_fd_mark(long fd, int on)
{
	if (fd >= 0 && fd < GK_WANT_FDS) {
		__atomic_store_n(&gk_want_fd[fd], (unsigned char)(on != 0),
		                 __ATOMIC_RELEASE);
		gk_want_fd_keep(fd, GK_FD_KEPT_MARKED, on);
	}
}
