/*
 * Benchmark driver (bench/intercept_bench.py), not a test:
 *     bench_syscalls getppid|write|futex|clock|none N
 * makes N system calls through libc (getppid(); write() of one byte to
 * /dev/null; futex(FUTEX_WAKE) on a private word nobody waits on;
 * clock_gettime(CLOCK_PROCESS_CPUTIME_ID), which no vDSO answers; "none"
 * runs the empty loop) and prints
 *     mode=M calls=N ns_per_call=X
 * timed around the loop only (process start-up and the core's patching
 * excluded) in the thread's CPU time, which the other load on a shared
 * machine disturbs far less than wall time (qemu-user answers it with the
 * host thread's CPU time, emulation included).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s getppid|write|none N\n", argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	long n = atol(argv[2]);
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || n <= 0) {
		perror("bench_syscalls");
		return 1;
	}
	volatile long sink = 0;
	char byte = 'x';
	double t0 = now_ns();
	if (strcmp(mode, "getppid") == 0) {
		for (long i = 0; i < n; i++)
			sink += getppid();
	} else if (strcmp(mode, "write") == 0) {
		for (long i = 0; i < n; i++)
			sink += write(fd, &byte, 1);
	} else if (strcmp(mode, "futex") == 0) {
		static int word;
		for (long i = 0; i < n; i++)
			sink += syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	} else if (strcmp(mode, "clock") == 0) {
		struct timespec ts;
		for (long i = 0; i < n; i++)
			sink += clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	} else if (strcmp(mode, "none") == 0) {
		for (long i = 0; i < n; i++)
			sink += i;
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	double t1 = now_ns();
	printf("mode=%s calls=%ld ns_per_call=%.1f\n", mode, n, (t1 - t0) / n);
	return 0;
}
