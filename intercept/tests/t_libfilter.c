/*
 * getpid three ways: through libc, through libt_rawsys.so's own ecall, and
 * through an ecall in this executable.  With the getpid-faking hook the
 * output shows which objects the core patched: libc by default, the
 * library with INTERCEPT_LIBS=libt_rawsys.so, everything with
 * INTERCEPT_ALL_OBJS=1.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "t_common.h"

long rawsys_getpid(void);

static long exe_getpid(void)
{
	register long a0 __asm__("a0");
	register long a7 __asm__("a7") = SYS_getpid;
	__asm__ volatile("ecall" : "=r"(a0) : "r"(a7) : "memory");
	return a0;
}

int main(void)
{
	printf("libc=%ld lib=%ld exe=%ld\n", (long)getpid(), rawsys_getpid(), exe_getpid());
	return 0;
}
