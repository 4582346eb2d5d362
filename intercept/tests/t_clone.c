/*
 * clone with CLONE_VM and a new stack, the hardest case for a patched
 * ecall: the child resumes on a different stack than the one the parent
 * entered the interception code with.  Forms:
 *   1. raw thread clone through libc's syscall() (clone_stub.S): CLONE_VM
 *      and the other thread flags, new stack, CLONE_CHILD_CLEARTID to wait;
 *   2. the same through glibc's clone() wrapper;
 *   3. glibc's clone() with CLONE_VM | CLONE_VFORK (the child reports by
 *      exit status: qemu-user runs such a child as a fork);
 *   4. a fork-like raw clone (SIGCHLD only, no stack): the child returns in place.
 * (qemu-user accepts CLONE_VM only with the full set of thread flags or with
 * CLONE_VFORK, so these are the forms that run both there and on hardware.)
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_common.h"

#define STACK_SIZE (256 * 1024)
#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | \
		      CLONE_THREAD | CLONE_SYSVSEM | CLONE_PARENT_SETTID | \
		      CLONE_CHILD_CLEARTID)

struct shared {
	volatile long pid_seen, tid_seen, on_stack, magic;
	char *stack_lo, *stack_hi;
	volatile int ptid, ctid;
};

static int on_own_stack(struct shared *s)
{
	volatile char local = 1;
	return (char *)&local >= s->stack_lo && (char *)&local < s->stack_hi;
}

static int thread_fn(void *p)
{
	struct shared *s = p;
	s->on_stack = on_own_stack(s);
	s->pid_seen = getpid();            /* libc system calls in the child */
	s->tid_seen = syscall(SYS_gettid);
	static const char msg[] = "thread child: running on its own stack\n";
	if (write(STDOUT_FILENO, msg, sizeof msg - 1) != sizeof msg - 1)
		return 2;
	s->magic = 0x5eed;
	return 0;
}

/* For a child that may or may not share memory: reports by exit status. */
static int vfork_fn(void *p)
{
	struct shared *s = p;
	static const char msg[] = "vfork child: running on its own stack\n";
	if (write(STDOUT_FILENO, msg, sizeof msg - 1) != sizeof msg - 1)
		return 2;
	return on_own_stack(s) ? 7 : 3;
}

static char *new_stack(struct shared *s)
{
	char *st = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	CHECK(st != MAP_FAILED);
	s->stack_lo = st;
	s->stack_hi = st + STACK_SIZE;
	return st;
}

/* Waits for a CLONE_CHILD_CLEARTID thread to be gone. */
static void wait_thread(struct shared *s)
{
	int v;
	while ((v = s->ctid) != 0)
		syscall(SYS_futex, &s->ctid, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void check_thread(struct shared *s, long tid)
{
	CHECK(s->ptid == tid);
	CHECK(s->pid_seen == getpid());
	CHECK(s->tid_seen == tid);
	CHECK(s->on_stack == 1);
	CHECK(s->magic == 0x5eed);
}

int main(void)
{
	struct shared s;
	int status;
	volatile long canary[16];
	for (int i = 0; i < 16; i++)
		canary[i] = 0x1000 + i * 7;

	/* 1. raw thread clone via syscall(), new stack */
	memset(&s, 0, sizeof s);
	char *st = new_stack(&s);
	s.ctid = -1;
	fflush(stdout);
	long tid = syscall_on_new_stack(SYS_clone, THREAD_FLAGS, (long)(st + STACK_SIZE),
					(long)&s.ptid, 0, (long)&s.ctid, thread_fn, &s);
	CHECK(tid > 0);
	wait_thread(&s);
	check_thread(&s, tid);
	CHECK(clone_stub_child_sp == st + STACK_SIZE);
	printf("raw clone(CLONE_VM|CLONE_THREAD..., new stack): ok\n");
	munmap(st, STACK_SIZE);

	/* 2. glibc clone(), same flags */
	memset(&s, 0, sizeof s);
	st = new_stack(&s);
	s.ctid = -1;
	fflush(stdout);
	tid = clone(thread_fn, st + STACK_SIZE, THREAD_FLAGS, &s, &s.ptid, NULL, &s.ctid);
	CHECK(tid > 0);
	wait_thread(&s);
	check_thread(&s, tid);
	printf("glibc clone(CLONE_VM|CLONE_THREAD...): ok\n");
	munmap(st, STACK_SIZE);

	/* 3. glibc clone(), CLONE_VM | CLONE_VFORK */
	memset(&s, 0, sizeof s);
	st = new_stack(&s);
	fflush(stdout);
	long pid = clone(vfork_fn, st + STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &s);
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
	printf("glibc clone(CLONE_VM|CLONE_VFORK): ok\n");
	munmap(st, STACK_SIZE);

	/* 4. fork-like raw clone, child continues in place */
	pid_t parent = getpid();
	fflush(stdout);
	pid = syscall(SYS_clone, SIGCHLD, 0, NULL, 0, NULL);
	if (pid == 0)
		_exit(getppid() == parent ? 8 : 9);
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 8);
	printf("raw clone(SIGCHLD): ok\n");

	for (int i = 0; i < 16; i++)
		CHECK(canary[i] == 0x1000 + i * 7);
	printf("t_clone: PASS\n");
	return 0;
}
