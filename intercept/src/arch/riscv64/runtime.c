/*
 * runtime.c - the riscv64 run-time primitives of arch_runtime.h: a raw
 * system call in the core's own text (never patched: the core never
 * patches itself) and the instruction-cache flush after patching.
 */
#include <stdint.h>
#include <string.h>
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

/*
 * A veneer for trampolines farther than auipc+jalr's +-2 GiB from the
 * core (a non-PIE program sits at 0x10000, the core some 256 GiB up):
 * the trampoline's call reaches the veneer instead, with ra = ret0 and
 * every other register the program's.  The veneer borrows t0 through
 * the stack (below sp only after lowering it: no red zone on RISC-V) and
 * jumps to gk_entry_far, which gives t0 and the 16 bytes back and is
 * gk_entry from there on.  8-byte aligned `at` (the literal's load).
 */
size_t
gk_arch_far_veneer(uint8_t *out, uint64_t at, uint64_t target)
{
	static const uint32_t code[6] = {
		0xff010113,   /* addi  sp, sp, -16 */
		0x00513023,   /* sd    t0, 0(sp) */
		0x00000297,   /* auipc t0, 0 */
		0x0102b283,   /* ld    t0, 16(t0): the literal at +24 */
		0x00028067,   /* jr    t0 */
		0x00000013,   /* nop (pads the literal to 8 bytes) */
	};
	(void)at;
	memcpy(out, code, sizeof(code));
	memcpy(out + sizeof(code), &target, sizeof(target));
	return sizeof(code) + sizeof(target);
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
