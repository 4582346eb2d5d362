/*
 * Signals and patched system calls: handlers that make system calls run
 * while the main thread is inside intercepted calls; the handler's return
 * (rt_sigreturn) resumes the interrupted code exactly; a blocking read is
 * interrupted with EINTR without SA_RESTART and restarted with it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "t_common.h"

static volatile sig_atomic_t alarms, usr1;
static pid_t my_pid;

static void on_alarm(int sig)
{
	int saved = errno;
	if (getpid() == my_pid)         /* a system call inside the handler */
		alarms++;
	errno = saved;
}

static void on_usr1(int sig)
{
	usr1++;
}

struct kick {
	pthread_t target;
	int fd;                 /* write end, or -1 */
	volatile int done;      /* main's read has returned */
};

/* Signals the main thread every 50 ms until its read() returns (so one
 * signal surely lands while it blocks, however slow the machine); with a
 * write end, also writes the byte it waits for after the third signal. */
static void *kicker(void *p)
{
	struct kick *k = p;
	int sent = 0;
	while (!k->done) {
		usleep(50 * 1000);
		if (k->done)
			break;
		pthread_kill(k->target, SIGUSR1);
		if (k->fd >= 0 && ++sent == 3 && write(k->fd, "k", 1) != 1)
			return (void *)1;
	}
	return NULL;
}

static void blocking_read(int restart)
{
	struct sigaction sa;
	int p[2];
	char c;
	pthread_t th;
	struct kick k;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	CHECK(pipe(p) == 0);
	k.target = pthread_self();
	k.fd = restart ? p[1] : -1;
	k.done = 0;
	int before = usr1;
	CHECK(pthread_create(&th, NULL, kicker, &k) == 0);
	errno = 0;
	ssize_t n = read(p[0], &c, 1);
	int err = errno;
	k.done = 1;
	void *ret;
	CHECK(pthread_join(th, &ret) == 0 && ret == NULL);
	errno = err;
	if (restart)
		CHECK(n == 1 && c == 'k' && usr1 >= before + 3);
	else
		CHECK(n == -1 && errno == EINTR && usr1 >= before + 1);
	close(p[0]);
	close(p[1]);
	printf("blocking read with%s SA_RESTART: %s\n", restart ? "" : "out",
	       restart ? "restarted" : "EINTR");
}

int main(void)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 300 }, { 0, 300 } };
	char buf[64];
	my_pid = getpid();

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
	int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	pid_t parent = getppid();
	for (long i = 0; i < 40000 || alarms < 20; i++) {
		CHECK(getppid() == parent);
		memset(buf, 1, sizeof buf);
		CHECK(read(fd, buf, sizeof buf) == sizeof buf && buf[0] == 0 && buf[63] == 0);
		CHECK(i < 4000000);
	}
	memset(&it, 0, sizeof it);
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
	close(fd);
	printf("timer signals during system calls: handled, results intact\n");

	blocking_read(0);
	blocking_read(1);
	printf("t_signals: PASS\n");
	return 0;
}
