/*
 * config.c - the environment, read once by the constructor (before any
 * patching; gk_getenv, util.c, rather than libc's: start-up cost).
 *
 *   INTERCEPT_HOOK_CMDLINE_FILTER  only intercept if argv[0] is it or ends
 *                                  in '/' + it
 *   INTERCEPT_ALL_OBJS             (set) patch every loaded object but the core
 *   INTERCEPT_LIBS=a,b*            also patch objects whose basename matches
 *   INTERCEPT_SYS_INCLUDE=x,y      only hook these syscalls (names/numbers)
 *   INTERCEPT_SYS_EXCLUDE=x,y      hook all but these (exclusive with above)
 *   INTERCEPT_LOG_SITES=1          log every ecall site's patch, not only
 *                                  the ones left alone (tests, reports)
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

struct gk_config gk_cfg = {.allowed = 1, .reuse_rela = 1};

static void
err_line(const char *msg, const char *detail, size_t dlen)
{
	struct gk_buf b;   /* not zeroed: 1 KiB, length-tracked */
	b.n = 0;
	gk_buf_str(&b, "gkfs-intercept: ");
	gk_buf_str(&b, msg);
	if (detail) {
		gk_buf_str(&b, ": '");
		gk_buf_mem(&b, detail, dlen);
		gk_buf_str(&b, "'");
	}
	b.b[b.n++] = '\n';
	GK_RAW(SYS_write, 2, b.b, b.n);
	b.n--;
	gk_log_buf(&b);
}

/* As syscall_intercept decides it: argv[0] is the filter, or ends with
 * '/' + the filter ("./dir/a.out" and "a.out" match "a.out", "xa.out"
 * does not; "bin/ls" matches "/usr/bin/ls").  An empty filter therefore
 * matches no ordinary command: nothing is intercepted. */
static int
filter_matches(const char *argv0, const char *filter)
{
	size_t flen = strlen(filter), clen = strlen(argv0);

	if (flen > clen)
		return 0;
	if (clen > flen && argv0[clen - flen - 1] != '/')
		return 0;
	return strcmp(argv0 + clen - flen, filter) == 0;
}

/* argv[0] from /proc/self/cmdline: the kernel's record of the command,
 * independent of what the program later does to its argv. */
static int
cmdline_matches(const char *want)
{
	char buf[4096];
	long fd, n;

	fd = GK_RAW(SYS_openat, AT_FDCWD, "/proc/self/cmdline",
	            O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	n = GK_RAW(SYS_read, fd, buf, sizeof(buf) - 1);
	GK_RAW(SYS_close, fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return filter_matches(buf, want);
}

static int
parse_sys_list(const char *var, const char *list)
{
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		long nr = -1;

		if (len) {
			if (p[0] >= '0' && p[0] <= '9') {
				char *end;
				nr = strtol(p, &end, 0);
				if (end != p + len)
					nr = -1;
			} else {
				nr = gk_sysno_by_name(p, len);
			}
			if (nr < 0 || nr >= GK_MAX_SYSNO) {
				err_line(var, p, len);
				err_line("unknown system call, nothing is intercepted",
				         NULL, 0);
				return -1;
			}
			gk_cfg.sys_bits[nr / 8] |= (uint8_t)(1u << (nr % 8));
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

int
gk_config_load(void)
{
	static const char *const names[] = {
		"INTERCEPT_HOOK_CMDLINE_FILTER", "INTERCEPT_ALL_OBJS",
		"INTERCEPT_SYS_INCLUDE", "INTERCEPT_SYS_EXCLUDE", "INTERCEPT_LIBS",
		"INTERCEPT_REUSE_RELA", "INTERCEPT_FORCE_GATEWAY",
		"INTERCEPT_LOG_SITES",
	};
	const char *v[8] = {0}, *f, *all, *inc, *exc;

	GK_GETENV_ALL(names, v);   /* one pass: see util.c */
	f = v[0];
	all = v[1];
	inc = v[2];
	exc = v[3];
	if (f && !cmdline_matches(f)) {
		gk_cfg.allowed = 0;
		return -1;
	}
	/* set, whatever its value (even 0 or empty), as in syscall_intercept */
	gk_cfg.all_objs = all != NULL;
	gk_cfg.libs = v[4];
	f = v[5];
	gk_cfg.reuse_rela = !(f && strcmp(f, "0") == 0);
	f = v[6];
	gk_cfg.force_gateway = f && *f && strcmp(f, "0") != 0;
	f = v[7];
	gk_cfg.log_sites = f && *f && strcmp(f, "0") != 0;
	if (inc && *inc && exc && *exc) {
		err_line("INTERCEPT_SYS_INCLUDE and INTERCEPT_SYS_EXCLUDE are "
		         "mutually exclusive; nothing is intercepted", NULL, 0);
		gk_cfg.config_error = 1;
		gk_cfg.allowed = 0;
		return -1;
	}
	if (inc && *inc) {
		gk_cfg.sys_filter = 1;
		if (parse_sys_list("INTERCEPT_SYS_INCLUDE", inc) < 0)
			goto bad;
	} else if (exc && *exc) {
		gk_cfg.sys_filter = -1;
		if (parse_sys_list("INTERCEPT_SYS_EXCLUDE", exc) < 0)
			goto bad;
	}
	return 0;
bad:
	gk_cfg.config_error = 1;
	gk_cfg.allowed = 0;   /* nothing is intercepted: hooks should know */
	return -1;
}

int
gk_lib_selected(const char *path)
{
	const char *p = gk_cfg.libs;
	const char *base = gk_basename(path);

	if (!p)
		return 0;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char pat[256];

		if (len && len < sizeof(pat)) {
			memcpy(pat, p, len);
			pat[len] = '\0';
			/* a pattern with a '/' matches the whole path */
			if (gk_glob(pat, strchr(pat, '/') ? path : base,
			            strlen(strchr(pat, '/') ? path : base)))
				return 1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}
