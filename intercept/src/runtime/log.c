/*
 * log.c - INTERCEPT_LOG: one line per intercepted system call.
 *
 * Lines are built in a stack buffer and written with one raw write() on an
 * O_APPEND descriptor, so lines of threads and forked children never
 * interleave and no lock is needed.  Never uses stdio: the log is written
 * from inside intercepted system calls.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

static int log_fd = -1;
static const char *log_path;   /* the environment's string, kept for forks */
static int log_flags;
static int log_raw;            /* INTERCEPT_LOG_RAW=1: six hex registers */

void
gk_buf_mem(struct gk_buf *b, const char *s, size_t n)
{
	size_t room = sizeof(b->b) - 1 - b->n;   /* keep one byte for '\n' */
	if (n > room)
		n = room;
	memcpy(b->b + b->n, s, n);
	b->n += n;
}

void
gk_buf_str(struct gk_buf *b, const char *s)
{
	gk_buf_mem(b, s, strlen(s));
}

void
gk_buf_dec(struct gk_buf *b, long v)
{
	char t[24];
	int i = sizeof(t);
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

	do {
		t[--i] = '0' + u % 10;
		u /= 10;
	} while (u);
	if (v < 0)
		t[--i] = '-';
	gk_buf_mem(b, t + i, sizeof(t) - i);
}

void
gk_buf_hex(struct gk_buf *b, unsigned long v)
{
	char t[20];
	int i = sizeof(t);

	do {
		t[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	t[--i] = 'x';
	t[--i] = '0';
	gk_buf_mem(b, t + i, sizeof(t) - i);
}

/* INTERCEPT_LOG=path; a trailing '-' appends the pid (one file per
 * process, which is what a forking/exec'ing program wants);
 * INTERCEPT_LOG_TRUNC=0 appends to an existing file. */
static void
open_for_pid(void)
{
	struct gk_buf path;   /* not zeroed: 1 KiB, length-tracked */
	path.n = 0;
	long fd;

	gk_buf_str(&path, log_path);
	if (log_path[strlen(log_path) - 1] == '-')
		gk_buf_dec(&path, GK_RAW(SYS_getpid, 0));
	path.b[path.n] = '\0';
	fd = GK_RAW(SYS_openat, AT_FDCWD, path.b, log_flags, 0644);
	log_fd = fd >= 0 ? (int)fd : -1;
}

void
gk_log_open(void)
{
	static const char *const names[] = {
		"INTERCEPT_LOG", "INTERCEPT_LOG_TRUNC", "INTERCEPT_LOG_RAW",
	};
	const char *v[3] = {0}, *p, *trunc;

	GK_GETENV_ALL(names, v);   /* one pass: see util.c */
	p = v[0];
	if (!p || !*p)
		return;
	trunc = v[1];
	log_path = p;
	p = v[2];
	log_raw = p && *p && strcmp(p, "0") != 0;
	log_flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
	if (!trunc || strcmp(trunc, "0") != 0)
		log_flags |= O_TRUNC;
	open_for_pid();
}

/* A forked child (own address space) is a new process: with a per-pid log
 * it gets its own file.  Raw calls only: this runs inside the clone call. */
void
gk_log_after_fork(void)
{
	if (log_fd < 0 || log_path[strlen(log_path) - 1] != '-')
		return;
	GK_RAW(SYS_close, log_fd);
	open_for_pid();
}

int
gk_log_enabled(void)
{
	return log_fd >= 0;
}

void
gk_log_buf(struct gk_buf *b)
{
	if (log_fd < 0)
		return;
	b->b[b->n++] = '\n';   /* gk_buf_mem always leaves room for it */
	GK_RAW(SYS_write, log_fd, b->b, b->n);
	b->n--;
}

void
gk_log_msg(const char *s)
{
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked */
	b.n = 0;
	gk_buf_str(&b, s);
	gk_log_buf(&b);
}

/* "<pid>.<tid> name(decoded args) = result how" (log_decode.c), or with
 * INTERCEPT_LOG_RAW=1 "<pid>.<tid> name(a0, ..., a5) = result how". */
void
gk_log_syscall(long nr, const long *args, long result, int result_known,
               const char *how)
{
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked */
	b.n = 0;
	const char *name;

	if (log_fd < 0)
		return;
	gk_buf_dec(&b, GK_RAW(SYS_getpid, 0));
	gk_buf_str(&b, ".");
	gk_buf_dec(&b, GK_RAW(SYS_gettid, 0));
	gk_buf_str(&b, " ");
	if (!log_raw) {
		gk_log_decode(&b, nr, args, result, result_known);
		goto how;
	}
	name = gk_sysname(nr);
	if (name) {
		gk_buf_str(&b, name);
	} else {
		gk_buf_str(&b, "syscall_");
		gk_buf_dec(&b, nr);
	}
	gk_buf_str(&b, "(");
	for (int i = 0; i < 6; i++) {
		if (i)
			gk_buf_str(&b, ", ");
		gk_buf_hex(&b, (unsigned long)args[i]);
	}
	gk_buf_str(&b, ") = ");
	if (result_known)
		gk_buf_dec(&b, result);
	else
		gk_buf_str(&b, "?");
how:
	if (how && *how) {
		gk_buf_str(&b, " ");
		gk_buf_str(&b, how);
	}
	gk_log_buf(&b);
}
