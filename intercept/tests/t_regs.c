/*
 * A patched ecall may clobber nothing: after a system call made from
 * regs_stub.S every register but a0 must hold what it held before, the
 * floating-point registers included (a hook is ordinary C code and may use
 * them).  Prints the result and "registers preserved" or each register
 * that changed.  Run with INTERCEPT_ALL_OBJS=1 so the core patches the
 * executable's ecall.
 *     t_regs [getpid|getppid]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "t_common.h"

void regs_ecall(long nr, unsigned long out[64]);

int main(int argc, char **argv)
{
	long nr = (argc > 1 && strcmp(argv[1], "getppid") == 0) ? SYS_getppid : SYS_getpid;
	unsigned long r[64];
	int bad = 0;
	uintptr_t sp_before = (uintptr_t)__builtin_frame_address(0);

	regs_ecall(nr, r);
	for (int n = 1; n < 32; n++) {
		unsigned long want;
		if (n == 2 || n == 3 || n == 4 || n == 10)
			continue;       /* sp (checked below), gp, tp, a0 */
		want = n == 17 ? (unsigned long)nr : 0x5a00ul + n;
		if (r[n] != want) {
			printf("x%d changed: %#lx, expected %#lx\n", n, r[n], want);
			bad = 1;
		}
	}
	for (int n = 0; n < 32; n++) {
		unsigned long want = 0x4000000000000000ul + n;
		if (r[32 + n] != want) {
			printf("f%d changed: %#lx, expected %#lx\n", n, r[32 + n], want);
			bad = 1;
		}
	}
	/* the stub's frame lies below ours: sp after the ecall must be there */
	if (!(r[2] < sp_before && sp_before - r[2] < 4096)) {
		printf("sp changed: %#lx\n", r[2]);
		bad = 1;
	}
	printf("a0=%ld\n", (long)r[10]);
	printf("%s\n", bad ? "registers CLOBBERED" : "registers preserved");
	return bad;
}
