/*
 * runtime.c - the riscv64 run-time primitives of arch_runtime.h: a raw
 * system call in the core's own text (never patched: the core never
 * patches itself) and the instruction-cache flush after patching.
 */
#include <stdint.h>
#include <sys/syscall.h>

#include "gkfs_intercept/plan.h"
#include "../arch_runtime.h"

_Static_assert(GK_ENTRY_RAW_OFFSET == GK_TRAMP_RAW_OFFSET, "entry.S vs plan.h");

long
gk_raw6(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	register long r_a0 __asm__("a0") = a0;
	register long r_a1 __asm__("a1") = a1;
	register long r_a2 __asm__("a2") = a2;
	register long r_a3 __asm__("a3") = a3;
	register long r_a4 __asm__("a4") = a4;
	register long r_a5 __asm__("a5") = a5;
	register long r_a7 __asm__("a7") = nr;

	__asm__ volatile("ecall"
	                 : "+r"(r_a0)
	                 : "r"(r_a1), "r"(r_a2), "r"(r_a3), "r"(r_a4),
	                   "r"(r_a5), "r"(r_a7)
	                 : "memory");
	return r_a0;
}

/* fence.i orders this hart's fetches; the syscall makes every hart (and
 * other threads migrating later) see the new code. */
void
gk_arch_flush_icache(uint64_t start, uint64_t end)
{
#ifndef SYS_riscv_flush_icache
#define SYS_riscv_flush_icache 259
#endif
	__asm__ volatile("fence.i" ::: "memory");
	gk_raw6(SYS_riscv_flush_icache, (long)start, (long)end, 0, 0, 0, 0);
}
