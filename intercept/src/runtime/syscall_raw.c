/*
 * syscall_raw.c - syscall_no_intercept: the architecture's raw call
 * (gk_raw6, in the core's own text, which is never patched), so it always
 * goes straight to the kernel; the dispatcher and the logger use gk_raw6
 * for every system call they make.
 */
#include <stdarg.h>

#include "libsyscall_intercept_hook_point.h"
#include "runtime.h"

/* Reading six variadic longs is fine on the LP64 ABIs we target (riscv64:
 * a1..a6 spilled to the va area; x86_64: registers, then the stack the
 * caller owns), whatever the caller passed. */
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
