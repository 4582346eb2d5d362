/*
 * exec_state.c - gkfs state across exec.
 *
 * The kernel keeps a descriptor without FD_CLOEXEC open across exec, and
 * that includes a gkfs placeholder (a memfd holding the open file
 * description, fdtable.h).  The new image knows nothing of it, so exec is
 * given two extra environment variables:
 *   LIBGKFS_FDS=3,5,7   gkfs descriptors at the time of exec (those with
 *                       FD_CLOEXEC are gone afterwards; each listed number
 *                       is checked to be a placeholder before adoption)
 *   LIBGKFS_CWD=/dir    the current directory, when it is inside gkfs
 * The constructor of the new image adopts them and removes both variables
 * from its environment.  This is what makes `cmd > /gkfs/file` in a shell
 * work: the shell opens the file, dup2s it to 1 and execs cmd.
 *
 * Runs in a vfork child too (posix_spawn), on a small borrowed stack:
 * only stack buffers and raw calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "config.h"
#include "fdtable.h"
#include "hooks.h"
#include "log.h"
#include "paths.h"
#include "runtime.h"   /* gk_getenv */

#define FDS_VAR "LIBGKFS_FDS="
#define CWD_VAR "LIBGKFS_CWD="

struct fd_list { char *buf; size_t size, len; };

static int
append_fd(int fd, struct gk_file *f, void *arg)
{
	struct fd_list *l = arg;
	char num[16];
	int n = snprintf(num, sizeof(num), "%s%d", l->len > sizeof(FDS_VAR) - 1 ? "," : "", fd);

	if (l->len + n + 1 > l->size)
		return 1;   /* too many: the rest stay unknown to the new image */
	memcpy(l->buf + l->len, num, n + 1);
	l->len += n;
	return 0;
}

long
gk_exec_with_state(long nr, const long *a, int envp_index)
{
	char fds[1024], cwd[sizeof(CWD_VAR) + GK_PATH_MAX + 1];
	char g[GK_PATH_MAX + 1];
	char *const *envp = (char *const *)a[envp_index];
	struct fd_list l = {fds, sizeof(fds), sizeof(FDS_VAR) - 1};
	size_t n = 0, k = 0, bytes;
	char **nenv;
	long b[6] = {a[0], a[1], a[2], a[3], a[4], a[5]}, rc;
	int mapped = 0;
	char *small[256];

	memcpy(fds, FDS_VAR, sizeof(FDS_VAR));
	if (gk_fd_count())
		gk_fd_each(append_fd, &l);
	cwd[0] = '\0';
	if (gk_cwd_gkfs_path(g, sizeof(g)))
		snprintf(cwd, sizeof(cwd), "%s%s", CWD_VAR, g);
	while (envp && envp[n])
		n++;
	bytes = (n + 3) * sizeof(char *);
	if (n + 3 <= sizeof(small) / sizeof(small[0])) {
		nenv = small;
	} else {
		nenv = (char **)syscall_no_intercept(SYS_mmap, NULL, bytes,
		        PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if ((long)nenv < 0 && (long)nenv > -4096)
			return gk_kernel(nr, a);
		mapped = 1;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], FDS_VAR, sizeof(FDS_VAR) - 1) &&
		    strncmp(envp[i], CWD_VAR, sizeof(CWD_VAR) - 1))
			nenv[k++] = envp[i];
	if (l.len > sizeof(FDS_VAR) - 1)
		nenv[k++] = fds;
	if (cwd[0])
		nenv[k++] = cwd;
	nenv[k] = NULL;
	b[envp_index] = (long)nenv;
	rc = gk_kernel(nr, b);
	if (mapped)   /* only reached when exec failed */
		syscall_no_intercept(SYS_munmap, nenv, bytes);
	return rc;
}

void
gk_exec_state_adopt(void)
{
	static const char *const names[] = {"LIBGKFS_FDS", "LIBGKFS_CWD"};
	const char *v[2] = {0}, *fds, *cwd;

	GK_GETENV_ALL(names, v);   /* one pass (the core's util.c: why) */
	fds = v[0];
	cwd = v[1];

	if (fds || cwd)
		gkc_config_ensure();   /* gkfs state to take over: the mount, the cluster */
	if (fds) {
		for (const char *p = fds; *p;) {
			char *end;
			long fd = strtol(p, &end, 10);
			if (end == p)
				break;
			if (gk_fd_adopt((int)fd) != 0)
				GKC_LOG(GKC_DEBUG, "LIBGKFS_FDS: %ld is not a gkfs descriptor (closed at exec)", fd);
			p = *end == ',' ? end + 1 : end;
		}
		unsetenv("LIBGKFS_FDS");
	}
	if (cwd) {
		if (cwd[0] == '/')
			gk_cwd_set_gkfs(cwd);
		unsetenv("LIBGKFS_CWD");
	}
}
