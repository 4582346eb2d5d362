/*
 * vfork: the child borrows the parent's stack until it execs or exits.
 * An interception core that keeps state on the stack across the ecall
 * (saved registers, a return address) sees the child return first and
 * call deeper functions over that very memory; the parent must still
 * resume with its stack, locals and registers intact.
 *   1. child writes, calls a stack-hungry function, _exits;
 *   2. child execs this program again ("exec-child" mode), which prints.
 * Note: qemu-user runs a vfork child as a fork (its own copy of memory), so
 * under qemu this checks the call path and results; the shared-stack
 * hazard itself only arises on hardware or a system emulator.
 */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <unistd.h>

#include "t_common.h"

/* Scribbles over a few KiB of stack below the caller's frame. */
static __attribute__((noinline)) long deep(int depth)
{
	volatile char buf[512];
	memset((char *)buf, 0xa5, sizeof buf);
	if (depth == 0)
		return buf[7];
	return deep(depth - 1) + buf[depth];
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
		printf("exec-child: running after vfork+exec\n");
		return 5;
	}
	volatile long canary[32];
	for (int i = 0; i < 32; i++)
		canary[i] = 0x7f000 ^ (i * 0x101);
	long a = 0x1234567, b = 0x7654321; /* likely kept in callee-saved registers */
	int status;
	static const char msg[] = "vfork child: before _exit\n";

	fflush(stdout);
	pid_t pid = vfork();
	if (pid == 0) {
		if (write(STDOUT_FILENO, msg, sizeof msg - 1) != sizeof msg - 1)
			_exit(2);
		if (deep(8) == 0 || getpid() <= 0)
			_exit(3);
		_exit(4);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 4);
	CHECK(a == 0x1234567 && b == 0x7654321);
	for (int i = 0; i < 32; i++)
		CHECK(canary[i] == (0x7f000 ^ (i * 0x101)));
	printf("vfork + _exit: parent intact\n");

	fflush(stdout);
	pid = vfork();
	if (pid == 0) {
		execl(argv[0], argv[0], "exec-child", (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 5);
	CHECK(a == 0x1234567 && b == 0x7654321);
	for (int i = 0; i < 32; i++)
		CHECK(canary[i] == (0x7f000 ^ (i * 0x101)));
	printf("vfork + exec: parent intact\n");
	printf("t_vfork: PASS\n");
	return 0;
}
