/*
 * Threads: several pthreads (clone3 or clone inside glibc) doing system
 * calls at once, started together by a barrier.  Every thread checks the
 * results of its own calls, so a core that mixes up per-thread state (a
 * shared save area, a lock held across the ecall) shows up as a wrong
 * result, a deadlock (the test's timeout) or a crash.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "t_common.h"

#define NTHREADS 8
#define ITERS 150

static pthread_barrier_t start;
static pid_t main_pid;

struct result {
	pid_t tid;
	long calls;
	int failed_line;
};

#define TCHECK(r, c) do { if (!(c)) { (r)->failed_line = __LINE__; return r; } } while (0)

static void *worker(void *p)
{
	struct result *r = p;
	char buf[64];
	pthread_barrier_wait(&start);
	r->tid = (pid_t)syscall(SYS_gettid);
	for (int i = 0; i < ITERS; i++) {
		TCHECK(r, getpid() == main_pid);
		TCHECK(r, syscall(SYS_gettid) == r->tid);
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		TCHECK(r, fd >= 0);
		int n = snprintf(buf, sizeof buf, "thread %d iteration %d\n", r->tid, i);
		TCHECK(r, write(fd, buf, n) == n);
		TCHECK(r, close(fd) == 0);
		fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
		TCHECK(r, fd >= 0);
		memset(buf, 1, sizeof buf);
		TCHECK(r, read(fd, buf, sizeof buf) == sizeof buf && buf[0] == 0 && buf[63] == 0);
		TCHECK(r, close(fd) == 0);
		r->calls += 8;
	}
	return r;
}

int main(void)
{
	pthread_t th[NTHREADS];
	struct result res[NTHREADS];
	main_pid = getpid();
	memset(res, 0, sizeof res);
	CHECK(pthread_barrier_init(&start, NULL, NTHREADS) == 0);
	for (int i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&th[i], NULL, worker, &res[i]) == 0);
	long total = 0;
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;
		CHECK(pthread_join(th[i], &ret) == 0);
		CHECK(ret == &res[i]);
		if (res[i].failed_line) {
			fprintf(stderr, "thread %d failed at line %d\n", i, res[i].failed_line);
			return 1;
		}
		CHECK(res[i].tid != main_pid && res[i].tid > 0);
		for (int j = 0; j < i; j++)
			CHECK(res[j].tid != res[i].tid);
		total += res[i].calls;
	}
	CHECK(total == (long)NTHREADS * ITERS * 8);
	printf("threads: %d x %d iterations, %ld checked system calls\n", NTHREADS, ITERS, total);
	printf("t_threads: PASS\n");
	return 0;
}
