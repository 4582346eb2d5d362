/*
 * libt_rawsys.so: a library with its own ecall, outside libc, so only the
 * core's library filter (INTERCEPT_LIBS) or INTERCEPT_ALL_OBJS brings it
 * under interception.
 */
#include <sys/syscall.h>

long rawsys_getpid(void)
{
	register long a0 __asm__("a0");
	register long a7 __asm__("a7") = SYS_getpid;
	__asm__ volatile("ecall" : "=r"(a0) : "r"(a7) : "memory");
	return a0;
}
