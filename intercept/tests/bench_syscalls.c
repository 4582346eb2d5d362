/*
 * Benchmark driver (bench/intercept_bench.py), not a test:
 *     bench_syscalls getppid|write|none N
 * makes N system calls through libc (getppid(), or write() of one byte to
 * /dev/null; "none" runs the empty loop) and prints
 *     mode=M calls=N ns_per_call=X
 * timed with CLOCK_MONOTONIC around the loop only, so process start-up and
 * the core's patching are excluded.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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
