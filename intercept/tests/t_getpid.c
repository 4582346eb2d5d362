/*
 * Prints the process id as libc's getpid() and a raw syscall(SYS_getpid)
 * see it, and whether the two agree; used with the getpid-faking hook.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

#include "t_common.h"

int main(void)
{
	long a = getpid();
	long b = syscall(SYS_getpid);
	printf("getpid=%ld syscall=%ld %s\n", a, b, a == b ? "agree" : "differ");
	return a == b ? 0 : 1;
}
