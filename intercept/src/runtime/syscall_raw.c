/*
 * syscall_raw.c - syscall_no_intercept: a plain ecall in the core's own
 * text.  The core never patches its own object, so this ecall always goes
 * straight to the kernel; the dispatcher and the logger use it for every
 * system call they make.
 */
#include <stdarg.h>

#include "libsyscall_intercept_hook_point.h"
#include "runtime.h"

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

/* Reading six variadic longs is fine on RISC-V: they arrive in a1..a6
 * (spilled to the va area by the prologue), whatever the caller passed. */
long
syscall_no_intercept(long nr, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	return gk_raw6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
