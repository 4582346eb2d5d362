/*
 * The hook API from a program's side (linked against the core): prints
 *   error_code -1=1 -4095=4095 -4096=4096 -4097=0 0=0 7=0
 *   allowed=<syscall_hook_in_process_allowed()>
 *   getpid=<libc> raw=<syscall_no_intercept(SYS_getpid)> real=<gettid in
 *   a single-threaded process: the real pid>
 * With the getpid-faking hook, libc's getpid is faked and the raw one is
 * not.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libsyscall_intercept_hook_point.h"

int main(void)
{
	static const long probe[] = {-1, -4095, -4096, -4097, 0, 7};

	printf("error_code");
	for (unsigned i = 0; i < sizeof probe / sizeof probe[0]; i++)
		printf(" %ld=%d", probe[i], syscall_error_code(probe[i]));
	printf("\nallowed=%d\n", syscall_hook_in_process_allowed());
	printf("getpid=%ld raw=%ld real=%ld\n", (long)getpid(),
	       syscall_no_intercept(SYS_getpid), syscall_no_intercept(SYS_gettid));
	return 0;
}
