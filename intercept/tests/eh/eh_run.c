/* Calls eh_pad_fn (landing_pad.S, in libeh_pad.so): its getpid must still
   work once the site is patched, whatever the window. */
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

long eh_pad_fn(long);

int main(void)
{
	long pid = syscall(SYS_getpid);
	printf("eh_pad_fn: %s\n", eh_pad_fn(0x4548) == pid ? "ok" : "WRONG");
	return 0;
}
