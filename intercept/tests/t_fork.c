/*
 * fork: the child continues in place with a copy of everything; it must
 * see its own pid, its parent, and working system calls; exit() in the
 * child runs its atexit handlers (and a hook library's destructors).
 * A grandchild checks the same one level down.
 */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <unistd.h>

#include "t_common.h"

static int child_work(pid_t parent, int fd)
{
	if (getppid() != parent)
		return 20;
	pid_t me = getpid();
	if (write(fd, &me, sizeof me) != sizeof me)
		return 21;
	return 0;
}

int main(void)
{
	int fds[2];
	int status;
	pid_t parent = getpid();
	CHECK(pipe(fds) == 0);

	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		int rc = child_work(parent, fds[1]);
		if (rc)
			exit(rc);
		/* grandchild */
		pid_t me = getpid();
		pid_t g = fork();
		if (g < 0)
			exit(22);
		if (g == 0)
			exit(child_work(me, fds[1]) ? 23 : 0);
		int st;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			exit(24);
		exit(42);
	}
	close(fds[1]);
	pid_t seen[2];
	CHECK(read(fds[0], &seen[0], sizeof seen[0]) == sizeof seen[0]);
	CHECK(read(fds[0], &seen[1], sizeof seen[1]) == sizeof seen[1]);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42);
	CHECK(seen[0] == pid);
	CHECK(seen[1] != pid && seen[1] != parent && seen[1] > 0);
	CHECK(getpid() == parent);
	printf("fork: child and grandchild ok\n");
	printf("t_fork: PASS\n");
	return 0;
}
