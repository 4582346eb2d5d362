/*
 * golden_run.c - runs the golden functions (intercept/tests/golden/*.S,
 * linked into libgolden.so) and checks their results, so that a patched
 * window that is wrong shows as a wrong answer or a crash.
 * tests/intercept/test_golden_run.py runs it unpatched and patched (jal
 * and forced gateways) and compares the output.
 *
 * Every golden ecall gets distinctive arguments (MAGIC_*), so the test can
 * find exactly these calls in INTERCEPT_LOG: a call logged with them went
 * through the patch, since nothing else makes it.  Printed lines hold no
 * pid or address, so patched and unpatched output must be identical.
 *
 * The golden functions follow no ABI (two clobbers s1, first reads a7),
 * hence the call through inline assembly with everything clobbered.
 * rvv_mix.S is linked in (its site must be patched) but not called:
 * qemu 7.2's user mode faults on RVV unit-stride loads (vle8.v).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAGIC_TWO   0x54574f31L   /* getpid(a0) in two */
#define MAGIC_FIRST 0x46525354L   /* getppid(a0) in first */
#define MAGIC_LAST  0x4c415354L   /* ioctl(a0, ...) in last */
#define MAGIC_LAST2 0x4c415332L   /* ioctl(a0, ...) in last2 */
#define MAGIC_OPEN  0x4f50454eL   /* openat(.., a3) in pcrel */
#define MAGIC_AFTER 0x41465452L   /* read(a0, ...) in after */

void two(void), first(void), last(void), next(void), last2(void), next2(void);
void pcrel(void), cbranch(void), after(void), retry(void);

struct regs {
	long a[6];
};

static struct regs
call(void (*fn)(void), long a0, long a1, long a2, long a3, long a7)
{
	register long r0 __asm__("a0") = a0;
	register long r1 __asm__("a1") = a1;
	register long r2 __asm__("a2") = a2;
	register long r3 __asm__("a3") = a3;
	register long r4 __asm__("a4") = 0;
	register long r5 __asm__("a5") = 0;
	register long r7 __asm__("a7") = a7;

	__asm__ volatile("jalr ra, 0(%[fn])"
	                 : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(r4),
	                   "+r"(r5), "+r"(r7)
	                 : [fn] "r"(fn)
	                 : "ra", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "a6",
	                   "s1", "memory");
	return (struct regs){{r0, r1, r2, r3, r4, r5}};
}

static int failures;

static void
check(const char *what, int ok)
{
	printf("%s: %s\n", what, ok ? "ok" : "WRONG");
	failures += !ok;
}

int
main(void)
{
	long pid = syscall(SYS_getpid), tid = syscall(SYS_gettid);
	long ppid = syscall(SYS_getppid);
	static const char msg[] = "retry: written by the golden write\n";
	struct regs r;
	int fd;

	setvbuf(stdout, NULL, _IONBF, 0);   /* ordered with retry's write */

	/* close.S: getpid then gettid 10 bytes later; s1 carries the pid */
	r = call(two, MAGIC_TWO, 0, 0, 0, 0);
	check("two: gettid, then getpid in a1..a5",
	      r.a[0] == tid && r.a[1] == pid && r.a[5] == pid);

	/* edges.S: ecall first, ecall last with the next function right after */
	r = call(first, MAGIC_FIRST, 0, 0, 0, SYS_getppid);
	check("first: getppid + 1", r.a[0] == ppid + 1 && r.a[4] == ppid + 1);
	r = call(last, MAGIC_LAST, 0, 0, 0, 0);
	check("last: falls into next", r.a[0] == 0 && r.a[1] == MAGIC_LAST);
	r = call(next, 5, 0, 0, 0, 0);
	check("next: entered directly", r.a[0] == 0);
	r = call(last2, MAGIC_LAST2, 0, 0, 0, 0);
	check("last2: falls into next2", r.a[0] == 0 && r.a[1] == MAGIC_LAST2);
	r = call(next2, 5, 0, 0, 0, 0);
	check("next2: entered directly", r.a[0] == 0);

	/* pcrel.S: openat after an auipc+ld pair, tail jump after it */
	r = call(pcrel, AT_FDCWD, (long)"golden_run.data", O_RDONLY | O_CLOEXEC,
	         MAGIC_OPEN, 0);
	fd = (int)r.a[0];
	check("pcrel: openat result", fd >= 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC);
	check("pcrel: word loaded through auipc+ld", r.a[5] == 0x1122334455667788L);
	check("pcrel: tail jump through auipc+jalr", r.a[4] == 13);
	/* cbranch: close; c.bnez on the result, c.j past the window */
	r = call(cbranch, fd, 0, 0, 0, 0);
	check("cbranch: close ok takes the c.j", r.a[0] == 0 && r.a[1] == 7);
	r = call(cbranch, fd, 0, 0, 0, 0);
	check("cbranch: close fails takes the c.bnez", r.a[0] == -1);

	/* target_after.S: c.beqz over the ecall; write in a retry loop */
	r = call(after, 0, 0, 0, 0, 0);
	check("after: branch over the read", r.a[0] == 0);
	r = call(after, MAGIC_AFTER, 0, 0, 0, 0);
	/* EBADF from a kernel, EFAULT from qemu (it checks the buffer first) */
	check("after: read on a bad fd fails",
	      (r.a[0] == -9 || r.a[0] == -14) && r.a[5] == r.a[0]);
	r = call(retry, 1, (long)msg, sizeof(msg) - 1, 0, 0);
	check("retry: write", r.a[0] == (long)sizeof(msg) - 1);

	printf("golden_run: %d wrong\n", failures);
	return failures ? 1 : 0;
}
