/*
 * A patched ecall may clobber nothing: after a system call made from
 * regs_stub.S every register but a0 must hold what it held before, the
 * floating-point registers included (a hook is ordinary C code and may use
 * them).  Prints the result and "registers preserved" or each register
 * that changed.  Run with INTERCEPT_ALL_OBJS=1 so the core patches the
 * executable's ecall.
 *     t_regs [getpid|getppid|write|close] [depth]
 * write and close are made with the number in a0 too (write(64, ...),
 * close(57): EBADF).  With "depth" it also prints how many bytes below
 * the stub's stack pointer the call wrote ("stack below the call: N"):
 * the trampoline's 16 and, for a call that reaches the dispatcher, the
 * entry's whole register frame; a call the hook never wants takes the
 * entry's fast path, which saves two registers only.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "t_common.h"

void regs_ecall(long nr, unsigned long out[64]);

#define STUB_FRAME 784      /* regs_stub.S lowers sp by this much */
#define PROBE_BYTES 4096
#define CANARY 0xc5c5c5c5c5c5c5c5ul

int main(int argc, char **argv)
{
	const char *call = argc > 1 ? argv[1] : "getpid";
	long nr = strcmp(call, "getppid") == 0 ? SYS_getppid :
	          strcmp(call, "write") == 0 ? SYS_write :
	          strcmp(call, "close") == 0 ? SYS_close : SYS_getpid;
	int depth = argc > 2 && strcmp(argv[2], "depth") == 0;
	unsigned long r[64];
	int bad = 0;
	uintptr_t sp_before = (uintptr_t)__builtin_frame_address(0);
	uintptr_t sp;
	volatile unsigned long *probe;
	size_t i;

	/* canaries below our sp: the stub's frame (STUB_FRAME bytes), then
	 * whatever the patched ecall wrote below the stub's sp */
	__asm__ volatile("mv %0, sp" : "=r"(sp));
	probe = (volatile unsigned long *)(sp - PROBE_BYTES);
	for (i = 0; i < PROBE_BYTES / 8; i++)
		probe[i] = CANARY;
	regs_ecall(nr, r);
	for (i = 0; i < PROBE_BYTES / 8 && probe[i] == CANARY; i++)
		;
	if (depth) {
		long below = (long)((sp - STUB_FRAME) - (uintptr_t)&probe[i]);
		printf("stack below the call: %ld\n", below > 0 ? below : 0);
	}
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
