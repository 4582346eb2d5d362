/*
 * Benchmark driver (bench/intercept_bench.py), not a test:
 *     bench_syscalls getppid|write|futex|clock|read|fstat|lseek|close|mmap|none N
 * makes N system calls through libc (getppid(); write() of one byte to
 * /dev/null; futex(FUTEX_WAKE) on a private word nobody waits on;
 * clock_gettime(CLOCK_PROCESS_CPUTIME_ID), which no vDSO answers; read()
 * of one byte from /dev/zero; fstat() (glibc: newfstatat with
 * AT_EMPTY_PATH), lseek() of a local file in $TMPDIR or /tmp; "close":
 * dup() then close() of that file's descriptor, a pair per round;
 * mmap() of one anonymous page, never unmapped; "none" runs the empty
 * loop) and prints
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
#include <sys/mman.h>
#include <sys/stat.h>
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
		fprintf(stderr, "usage: %s getppid|write|futex|clock|read|fstat|lseek|close|"
		        "mmap|none N\n", argv[0]);
		return 2;
	}
	const char *mode = argv[1];
	long n = atol(argv[2]);
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	const char *tmp = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/bench_syscalls.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int local = mkstemp(path);
	if (fd < 0 || zero < 0 || local < 0 || n <= 0) {
		perror("bench_syscalls");
		return 1;
	}
	unlink(path);   /* the descriptor keeps it */
	if (write(local, "0123456789", 10) != 10) {
		perror("bench_syscalls: write");
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
	} else if (strcmp(mode, "read") == 0) {
		for (long i = 0; i < n; i++)
			sink += read(zero, &byte, 1);
	} else if (strcmp(mode, "fstat") == 0) {
		struct stat st;
		for (long i = 0; i < n; i++)
			sink += fstat(local, &st);
	} else if (strcmp(mode, "lseek") == 0) {
		for (long i = 0; i < n; i++)
			sink += lseek(local, (off_t)(i & 7), SEEK_SET);
	} else if (strcmp(mode, "close") == 0) {
		for (long i = 0; i < n; i++)
			sink += close(dup(local));
	} else if (strcmp(mode, "mmap") == 0) {
		for (long i = 0; i < n; i++)
			sink += (long)mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) & 1;
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
