/*
 * Example hook library: passes every call through, but first overwrites
 * every register the C calling convention lets a function overwrite
 * (t0-t6, a0-a7, ft0-ft11, fa0-fa7), as compiled hook code may.  With it
 * preloaded the core must still return to the program with nothing but a0
 * changed (t_regs checks).
 */
#include "libsyscall_intercept_hook_point.h"

static int hook(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
		long *result)
{
	__asm__ volatile(
		"li t0, -1\n\tli t1, -1\n\tli t2, -1\n\tli t3, -1\n\tli t4, -1\n\t"
		"li t5, -1\n\tli t6, -1\n\t"
		"fmv.d.x ft0, t0\n\tfmv.d.x ft1, t0\n\tfmv.d.x ft2, t0\n\tfmv.d.x ft3, t0\n\t"
		"fmv.d.x ft4, t0\n\tfmv.d.x ft5, t0\n\tfmv.d.x ft6, t0\n\tfmv.d.x ft7, t0\n\t"
		"fmv.d.x ft8, t0\n\tfmv.d.x ft9, t0\n\tfmv.d.x ft10, t0\n\tfmv.d.x ft11, t0\n\t"
		"fmv.d.x fa0, t0\n\tfmv.d.x fa1, t0\n\tfmv.d.x fa2, t0\n\tfmv.d.x fa3, t0\n\t"
		"fmv.d.x fa4, t0\n\tfmv.d.x fa5, t0\n\tfmv.d.x fa6, t0\n\tfmv.d.x fa7, t0\n\t"
		"li a0, -1\n\tli a1, -1\n\tli a2, -1\n\tli a3, -1\n\tli a4, -1\n\t"
		"li a5, -1\n\tli a6, -1\n\tli a7, -1\n\t"
		::: "t0", "t1", "t2", "t3", "t4", "t5", "t6",
		    "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7",
		    "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7",
		    "ft8", "ft9", "ft10", "ft11",
		    "fa0", "fa1", "fa2", "fa3", "fa4", "fa5", "fa6", "fa7", "memory");
	return 1;
}

static __attribute__((constructor)) void init(void)
{
	intercept_hook_point = hook;
}
