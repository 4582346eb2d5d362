/*
 * proc_fd.c - /proc/self/fd/N, /proc/thread-self/fd/N, /proc/<own pid>/fd/N
 * and /dev/fd/N where N is a gkfs descriptor.
 *
 * Why: the kernel only knows N as the placeholder memfd (fdtable.h), so
 * passed through, these paths silently answered about the placeholder
 * (readlink gave "/memfd:gkfs (deleted)", open read its page, chmod changed
 * it; glibc's lchmod/fchmodat(AT_SYMLINK_NOFOLLOW) goes exactly this way).
 * Here they are spelled as the file they stand for: the mount prefix + the
 * descriptor's gkfs path, so every path-taking hook treats them as that
 * file, and readlink answers that text.  Other spellings (a dirfd on
 * /proc/self/fd, /proc/<pid>/task/<tid>/fd, another process's pid) still
 * reach the kernel: documented in intercept/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "fdtable.h"
#include "proc_fd.h"

/* After one of the directory prefixes: the rest of path, else NULL. */
static const char *
after_fd_dir(const char *path)
{
	static const char *fixed[] = {"/proc/self/fd/", "/proc/thread-self/fd/", "/dev/fd/"};
	char own[40];
	size_t n;

	for (unsigned i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		n = strlen(fixed[i]);
		if (!strncmp(path, fixed[i], n))
			return path + n;
	}
	if (strncmp(path, "/proc/", 6) || path[6] < '1' || path[6] > '9')
		return NULL;
	n = (size_t)snprintf(own, sizeof(own), "/proc/%ld/fd/",
	                     syscall_no_intercept(SYS_getpid));
	return strncmp(path, own, n) ? NULL : path + n;
}

int
gk_proc_fd_path(const char *path, char *out, size_t size, int *exact)
{
	const char *p, *rest;
	struct gk_file *f;
	long fd;
	int n;

	if (!path || !gk_fd_count() || !(p = after_fd_dir(path)) || *p < '0' || *p > '9')
		return 0;
	fd = strtol(p, (char **)&rest, 10);
	if (*rest && *rest != '/')
		return 0;
	if (fd > 0x7fffffff || !(f = gk_fd_get((int)fd)))
		return 0;
	n = snprintf(out, size, "%s%s%s", gkc_cfg.mount,
	             strcmp(f->ofd->path, "/") ? f->ofd->path : "", rest);
	gk_file_put(f);
	if (exact)
		*exact = !*rest;
	return n > 0 && (size_t)n < size;
}
