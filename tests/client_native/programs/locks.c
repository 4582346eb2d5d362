/*
 * locks.c - fcntl record locks, OFD locks and flock on a gkfs file between
 * processes (fork), run under qemu with libgkfs_intercept.so preloaded by
 * tests/client_native/test_locks.py.  argv[1]: a gkfs directory.
 * Prints "ok <check>" per check; a failure prints "FAIL ..." and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...) do { \
	if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
	               printf(" (errno %d %s)\n", errno, strerror(errno)); fflush(stdout); exit(1); } } while (0)
#define OK(name) do { printf("ok %s\n", name); fflush(stdout); } while (0)

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	return fcntl(fd, cmd, &fl);
}

/* a pipe to make the parent and child take turns */
static int to_child[2], to_parent[2];
static void say(int *p) { char c = 'x'; if (write(p[1], &c, 1) != 1) _exit(9); }
static void hear(int *p) { char c; if (read(p[0], &c, 1) != 1) _exit(9); }

static int
child_status(pid_t pid)
{
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static void on_alarm(int sig) { (void)sig; }

int
main(int argc, char **argv)
{
	char f[4096];
	alarm(60);    /* a failed child must not leave the parent waiting for ever */
	snprintf(f, sizeof(f), "%s/locked.db", argv[1]);
	int fd = open(f, O_CREAT | O_RDWR, 0644);
	CHECK(fd >= 0, "open");
	CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");

	/* 1. record locks between processes, F_GETLK, F_SETLKW waiting */
	CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 100) == 0, "parent write lock");
	pid_t pid = fork();
	if (pid == 0) {
		int cfd = open(f, O_RDWR);
		CHECK(setlk(cfd, F_SETLK, F_RDLCK, 50, 10) < 0 && errno == EAGAIN, "child: conflict EAGAIN");
		CHECK(setlk(cfd, F_SETLK, F_WRLCK, 100, 10) == 0, "child: adjacent range");
		struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 5};
		CHECK(fcntl(cfd, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_start == 0 &&
		      q.l_len == 100 && q.l_pid == getppid(), "child: F_GETLK sees the parent's lock (pid %d)", q.l_pid);
		say(to_parent);
		double t0 = now();
		CHECK(setlk(cfd, F_SETLKW, F_WRLCK, 0, 100) == 0, "child: F_SETLKW");
		CHECK(now() - t0 > 0.2, "child: F_SETLKW waited for the parent");
		_exit(0);
	}
	hear(to_parent);
	struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 1};
	CHECK(fcntl(fd, F_GETLK, &q) == 0 && q.l_type == F_WRLCK && q.l_pid == pid, "parent: F_GETLK sees the child's");
	usleep(400000);
	/* closing ANY descriptor of the file drops the process's locks */
	int other = open(f, O_RDONLY);
	CHECK(other >= 0 && close(other) == 0, "close of another descriptor");
	CHECK(child_status(pid) == 0, "child 1");
	OK("fcntl record locks");

	/* 2. a dead process holds nothing */
	pid = fork();
	if (pid == 0) {
		int cfd = open(f, O_RDWR);
		CHECK(setlk(cfd, F_SETLK, F_WRLCK, 0, 0) == 0, "child 2: lock");
		CHECK(flock(cfd, LOCK_EX) == 0, "child 2: flock");
		say(to_parent);
		pause();           /* killed by the parent */
		_exit(0);
	}
	hear(to_parent);
	CHECK(setlk(fd, F_SETLK, F_RDLCK, 5, 1) < 0 && errno == EAGAIN, "held by the live child");
	int fd2 = open(f, O_RDONLY);
	CHECK(flock(fd2, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK, "flock held by the child");
	kill(pid, SIGKILL);
	CHECK(child_status(pid) == 100 + SIGKILL, "child 2 killed");
	double t0 = now();
	CHECK(setlk(fd, F_SETLKW, F_WRLCK, 0, 0) == 0, "lock after the holder died");
	CHECK(flock(fd2, LOCK_SH) == 0, "flock after the holder died");
	printf("dead holder released after %.2f s\n", now() - t0);
	CHECK(now() - t0 < 15, "released in time");
	CHECK(flock(fd2, LOCK_UN) == 0, "flock unlock");
	CHECK(setlk(fd, F_SETLK, F_UNLCK, 0, 0) == 0, "unlock");
	OK("dead holder");

	/* 3. OFD locks: per open file description, also within one process */
	int a = open(f, O_RDWR), b = open(f, O_RDWR);
	CHECK(setlk(a, F_OFD_SETLK, F_WRLCK, 0, 10) == 0, "OFD lock a");
	CHECK(setlk(b, F_OFD_SETLK, F_WRLCK, 5, 10) < 0 && errno == EAGAIN, "OFD lock b conflicts");
	int a2 = dup(a);
	CHECK(setlk(a2, F_OFD_SETLK, F_WRLCK, 5, 10) == 0, "a duplicate shares the OFD lock");
	struct flock bad = {.l_type = F_WRLCK, .l_pid = 1};
	CHECK(fcntl(b, F_OFD_SETLK, &bad) < 0 && errno == EINVAL, "OFD l_pid must be 0");
	close(a);                   /* a2 still refers to the description */
	CHECK(setlk(b, F_OFD_SETLK, F_WRLCK, 0, 1) < 0 && errno == EAGAIN, "held while a duplicate is open");
	close(a2);
	CHECK(setlk(b, F_OFD_SETLK, F_WRLCK, 0, 1) == 0, "released at the last close");
	close(b);
	OK("OFD locks");

	/* 4. flock between processes; EINTR of a blocking wait */
	CHECK(flock(fd, LOCK_EX) == 0, "flock ex");
	pid = fork();
	if (pid == 0) {
		close(fd);           /* else the description (and its flock) outlives the parent's close */
		int cfd = open(f, O_RDONLY);
		CHECK(flock(cfd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK, "child: EWOULDBLOCK");
		struct sigaction sa = {.sa_handler = on_alarm};
		sigaction(SIGALRM, &sa, NULL);
		alarm(1);
		CHECK(flock(cfd, LOCK_SH) < 0 && errno == EINTR, "child: blocking flock interrupted");
		say(to_parent);
		CHECK(flock(cfd, LOCK_SH) == 0, "child: blocking flock granted");
		_exit(0);
	}
	hear(to_parent);
	usleep(200000);
	close(fd);                   /* the last descriptor: the flock goes */
	CHECK(child_status(pid) == 0, "child 4");
	OK("flock");
	CHECK(unlink(f) == 0, "unlink");
	printf("done\n");
	return 0;
}
