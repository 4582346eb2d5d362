/*
 * log.c - LIBGKFS_LOG=errors|info|debug (off when unset or "none"),
 * LIBGKFS_LOG_OUTPUT=path (default stderr; a trailing '-' appends the pid,
 * as INTERCEPT_LOG does).  Lines are formatted on the stack and written with
 * one raw write on an O_APPEND descriptor: no stdio, no lock, no
 * interception of our own writes.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "log.h"
#include "runtime.h"   /* gk_getenv */

int gkc_log_level;
static int log_fd = 2;
static const char *log_out;

static void
open_output(void)
{
	char path[512];
	size_t n;

	if (!log_out || !*log_out) {
		log_fd = 2;
		return;
	}
	n = strlen(log_out);
	if (log_out[n - 1] == '-')
		snprintf(path, sizeof(path), "%s%ld", log_out,
		         syscall_no_intercept(SYS_getpid));
	else
		snprintf(path, sizeof(path), "%s", log_out);
	long fd = syscall_no_intercept(SYS_openat, AT_FDCWD, path,
	                               O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	/* Keep the log away from the low numbers programs use on purpose
	 * (a shell's `exec 3> file` would silently replace it, and our lines
	 * would land in the program's file). */
	if (fd >= 0) {
		long high = syscall_no_intercept(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 700);
		if (high >= 0) {
			syscall_no_intercept(SYS_close, fd);
			fd = high;
		}
	}
	log_fd = fd >= 0 ? (int)fd : 2;
}

void
gkc_log_init(void)
{
	static const char *const names[] = {"LIBGKFS_LOG", "LIBGKFS_LOG_OUTPUT"};
	const char *v[2] = {0}, *lv;

	GK_GETENV_ALL(names, v);   /* one pass (the core's util.c: why) */
	lv = v[0];

	gkc_log_level = GKC_OFF;
	if (lv && *lv) {
		if (!strcmp(lv, "errors") || !strcmp(lv, "error"))
			gkc_log_level = GKC_ERR;
		else if (!strcmp(lv, "info"))
			gkc_log_level = GKC_INFO;
		else if (!strcmp(lv, "debug") || !strcmp(lv, "all"))
			gkc_log_level = GKC_DEBUG;
		else if (strcmp(lv, "none") && strcmp(lv, "off") && strcmp(lv, "0"))
			gkc_log_level = GKC_INFO;
	}
	log_out = v[1];
	if (gkc_log_level)
		open_output();
}

void
gkc_log_after_fork(void)
{
	if (gkc_log_level && log_out && *log_out &&
	    log_out[strlen(log_out) - 1] == '-') {
		if (log_fd > 2)
			syscall_no_intercept(SYS_close, log_fd);
		open_output();
	}
}

static void
vlog(int fd, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "gkfs[%ld]: ",
	                 syscall_no_intercept(SYS_getpid));
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);

	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	syscall_no_intercept(SYS_write, fd, line, n);
}

void
gkc_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (gkc_log_level < level)
		return;
	va_start(ap, fmt);
	vlog(log_fd, fmt, ap);
	va_end(ap);
}

void
gkc_warn_once(int *key, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_exchange_n(key, 1, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vlog(2, fmt, ap);
	va_end(ap);
	if (gkc_log_level && log_fd != 2) {
		va_start(ap, fmt);
		vlog(log_fd, fmt, ap);
		va_end(ap);
	}
}
