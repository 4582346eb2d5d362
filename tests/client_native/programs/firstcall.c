/*
 * firstcall: the client loads its configuration (hosts file, mount) at the
 * process's first hooked call (client/config.h).  Mode "threads": 8
 * threads, released together, make that first call at once (an open of a
 * gkfs file each) and read it; mode "fork": the process forks before any
 * hooked call and parent and child each open and read the file.  Prints
 * "ok" when every reader saw the expected text.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 8

static const char *path, *want;
static pthread_barrier_t start;

static int
read_ok(void)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

static void *
worker(void *arg)
{
	pthread_barrier_wait(&start);
	*(int *)arg = read_ok();
	return NULL;
}

int
main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	path = argv[2];
	want = argv[3];
	if (!strcmp(argv[1], "threads")) {
		pthread_t t[NTHREADS];
		int ok[NTHREADS] = {0};

		pthread_barrier_init(&start, NULL, NTHREADS);
		for (int i = 0; i < NTHREADS; i++)
			if (pthread_create(&t[i], NULL, worker, &ok[i]))
				return 3;
		for (int i = 0; i < NTHREADS; i++) {
			pthread_join(t[i], NULL);
			if (!ok[i])
				return 10 + i;
		}
	} else {
		pid_t pid = fork();
		int st = 0;

		if (pid < 0)
			return 4;
		if (pid == 0)
			_exit(read_ok() ? 0 : 5);
		if (!read_ok())
			return 6;
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 7;
	}
	puts("ok");
	return 0;
}
