/*
 * paths.c - path resolution against the mount prefix (see paths.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "fdtable.h"
#include "log.h"
#include "paths.h"
#include "proc_fd.h"
#include "runtime.h"   /* gk_want_fd_keep */

static pthread_mutex_t cwd_lock = PTHREAD_MUTEX_INITIALIZER;
static char gkfs_cwd[GK_PATH_MAX + 1];   /* "" = cwd not in gkfs */
static char kernel_cwd[GK_PATH_MAX + 1];
static int kernel_cwd_known;

#define MAX_ANCESTOR_FDS 32
static struct { int fd; char path[GK_PATH_MAX + 1]; } anc[MAX_ANCESTOR_FDS];
static int n_anc;

int
gk_normalize(const char *in, char *out, size_t size)
{
	size_t n = 0;
	const char *p = in;

	if (size < 2 || *in != '/')
		return -EINVAL;
	out[n++] = '/';
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != '/')
			e++;
		size_t len = e - p;
		if (len == 1 && p[0] == '.') {
			/* nothing */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (n > 1) {
				n--;                 /* drop the trailing '/' */
				while (n > 0 && out[n - 1] != '/')
					n--;
			}
		} else {
			if (len > GK_NAME_MAX)
				return -ENAMETOOLONG;
			if (n + len + 1 >= size)
				return -ENAMETOOLONG;
			memcpy(out + n, p, len);
			n += len;
			out[n++] = '/';
		}
		p = e;
	}
	if (n > 1)
		n--;                         /* no trailing '/' */
	out[n] = '\0';
	return 0;
}

/* Is abs (normalised) inside the mount prefix?  Then the gkfs path. */
static const char *
inside_mount(const char *abs)
{
	size_t m = gkc_cfg.mount_len;

	if (strncmp(abs, gkc_cfg.mount, m) != 0)
		return NULL;
	if (abs[m] == '\0')
		return "/";
	if (abs[m] == '/')
		return abs + m;
	return NULL;
}

int
gk_is_mount_ancestor(const char *abs)
{
	size_t n = strlen(abs);

	if (n == 1 && abs[0] == '/')
		return 1;
	return n < gkc_cfg.mount_len && !strncmp(gkc_cfg.mount, abs, n) &&
	       gkc_cfg.mount[n] == '/';
}

static int
needs_normalizing(const char *p)
{
	return strstr(p, "//") || strstr(p, "/.") || p[0] == '.';
}

static void
read_kernel_cwd_locked(void)
{
	long r = syscall_no_intercept(SYS_getcwd, kernel_cwd, sizeof(kernel_cwd));
	kernel_cwd_known = r > 0 && kernel_cwd[0] == '/';
}

/* Does the spelling end in '/', "/." or "/.."?  Then it names a directory. */
static int
names_directory(const char *p)
{
	size_t n = strlen(p);

	if (n && p[n - 1] == '/')
		return 1;
	if (n >= 2 && !strcmp(p + n - 2, "/."))
		return 1;
	return n >= 3 && !strcmp(p + n - 3, "/..");
}

/* Finishes: joined absolute text in tmp -> out. */
static int
classify(const char *joined, int from_gkfs, struct gk_resolved *out)
{
	char norm[GK_PATH_MAX + 1];
	const char *g;
	int rc = gk_normalize(joined, norm, sizeof(norm));

	if (rc)
		return rc == -EINVAL ? GK_KERNEL : rc;
	/* A path spelled through the mount prefix ("/gkfs/../etc") must reach
	 * the kernel normalised: the kernel has no /gkfs to walk through. */
	if (inside_mount(joined))
		from_gkfs = 1;
	g = inside_mount(norm);
	if (g) {
		strcpy(out->path, g);
		out->must_dir = names_directory(joined);
		return out->kind = GK_GKFS;
	}
	if (from_gkfs) {
		strcpy(out->path, norm);
		return out->kind = GK_KERNEL_ABS;
	}
	return out->kind = GK_KERNEL;
}

static int
join_and_classify(const char *base, const char *rel, int from_gkfs,
                  struct gk_resolved *out)
{
	char joined[2 * GK_PATH_MAX + 2];
	size_t b = strlen(base), r = strlen(rel);

	if (b + 1 + r + 1 > sizeof(joined))
		return -ENAMETOOLONG;
	memcpy(joined, base, b);
	joined[b] = '/';
	memcpy(joined + b + 1, rel, r + 1);
	return classify(joined, from_gkfs, out);
}

int
gk_resolve(int dirfd, const char *path, struct gk_resolved *out)
{
	char base[GK_PATH_MAX * 2 + 2];
	int from_gkfs = 0;

	out->kind = GK_KERNEL;
	out->must_dir = 0;
	if (!path || !*path)
		return GK_KERNEL;
	if (strlen(path) > GK_PATH_MAX)
		return GK_KERNEL;      /* the kernel answers ENAMETOOLONG */
	if (path[0] == '/') {
		/* /proc/self/fd/N of a gkfs descriptor: the file it stands for */
		if (gk_proc_fd_path(path, base, sizeof(base), NULL))
			return classify(base, 0, out);
		if (!inside_mount(path) && !needs_normalizing(path))
			return GK_KERNEL;
		return classify(path, 0, out);
	}
	if (dirfd == AT_FDCWD) {
		pthread_mutex_lock(&cwd_lock);
		if (gkfs_cwd[0]) {
			snprintf(base, sizeof(base), "%s%s", gkc_cfg.mount,
			         strcmp(gkfs_cwd, "/") ? gkfs_cwd : "");
			from_gkfs = 1;
		} else {
			if (!kernel_cwd_known)
				read_kernel_cwd_locked();
			if (!kernel_cwd_known) {
				pthread_mutex_unlock(&cwd_lock);
				return GK_KERNEL;
			}
			strcpy(base, kernel_cwd);
		}
		pthread_mutex_unlock(&cwd_lock);
		/* Fast exit: a kernel cwd unrelated to the mount prefix and no
		 * '..' in the path cannot reach gkfs. */
		if (!from_gkfs && !strstr(path, "..") && !inside_mount(base) &&
		    !gk_is_mount_ancestor(base))
			return GK_KERNEL;
		return join_and_classify(base, path, from_gkfs, out);
	}
	struct gk_file *f = gk_fd_get(dirfd);
	if (f) {
		int is_dir = f->ofd->is_dir;
		snprintf(base, sizeof(base), "%s%s", gkc_cfg.mount,
		         strcmp(f->ofd->path, "/") ? f->ofd->path : "");
		gk_file_put(f);
		if (!is_dir)
			return -ENOTDIR;
		return join_and_classify(base, path, 1, out);
	}
	if (__atomic_load_n(&n_anc, __ATOMIC_ACQUIRE)) {
		int found = 0;
		pthread_mutex_lock(&cwd_lock);
		for (int i = 0; i < n_anc; i++)
			if (anc[i].fd == dirfd) {
				strcpy(base, anc[i].path);
				found = 1;
				break;
			}
		pthread_mutex_unlock(&cwd_lock);
		if (found)
			return join_and_classify(base, path, 0, out);
	}
	return GK_KERNEL;
}

int
gk_cwd_in_gkfs(void)
{
	return __atomic_load_n(&gkfs_cwd[0], __ATOMIC_RELAXED) != 0;
}

void
gk_cwd_set_gkfs(const char *p)
{
	pthread_mutex_lock(&cwd_lock);
	if (p)
		snprintf(gkfs_cwd, sizeof(gkfs_cwd), "%s", p);
	else {
		gkfs_cwd[0] = '\0';
		read_kernel_cwd_locked();
	}
	pthread_mutex_unlock(&cwd_lock);
}

void
gk_cwd_kernel_changed(void)
{
	pthread_mutex_lock(&cwd_lock);
	gkfs_cwd[0] = '\0';
	read_kernel_cwd_locked();
	pthread_mutex_unlock(&cwd_lock);
}

const char *
gk_cwd_gkfs_path(char *buf, size_t size)
{
	const char *r = NULL;

	pthread_mutex_lock(&cwd_lock);
	if (gkfs_cwd[0]) {
		snprintf(buf, size, "%s", gkfs_cwd);
		r = buf;
	}
	pthread_mutex_unlock(&cwd_lock);
	return r;
}

int
gk_cwd_get(char *buf, size_t size, size_t *len)
{
	char g[GK_PATH_MAX + 1];
	size_t n;

	if (!gk_cwd_gkfs_path(g, sizeof(g)))
		return -ENOENT;
	n = gkc_cfg.mount_len + (strcmp(g, "/") ? strlen(g) : 0);
	if (n + 1 > size)
		return -ERANGE;
	memcpy(buf, gkc_cfg.mount, gkc_cfg.mount_len);
	if (strcmp(g, "/"))
		strcpy(buf + gkc_cfg.mount_len, g);
	buf[n] = '\0';
	*len = n;
	return 0;
}

void
gk_paths_note_kernel_dir(int fd, const char *abs_path)
{
	pthread_mutex_lock(&cwd_lock);
	for (int i = 0; i < n_anc; i++)
		if (anc[i].fd == fd) {
			snprintf(anc[i].path, sizeof(anc[i].path), "%s", abs_path);
			goto out;
		}
	if (n_anc < MAX_ANCESTOR_FDS) {
		/* its close must reach hook_close, which forgets it */
		gk_want_fd_keep(fd, GK_FD_KEPT_DIR, 1);
		anc[n_anc].fd = fd;
		snprintf(anc[n_anc].path, sizeof(anc[n_anc].path), "%s", abs_path);
		__atomic_store_n(&n_anc, n_anc + 1, __ATOMIC_RELEASE);
	}
out:
	pthread_mutex_unlock(&cwd_lock);
}

void
gk_paths_forget_fd(int fd)
{
	if (!__atomic_load_n(&n_anc, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&cwd_lock);
	for (int i = 0; i < n_anc; i++)
		if (anc[i].fd == fd) {
			anc[i] = anc[n_anc - 1];
			__atomic_store_n(&n_anc, n_anc - 1, __ATOMIC_RELEASE);
			gk_want_fd_keep(fd, GK_FD_KEPT_DIR, 0);
			break;
		}
	pthread_mutex_unlock(&cwd_lock);
}

void
gk_paths_after_fork(void)
{
	pthread_mutex_init(&cwd_lock, NULL);
}

void
gk_parent_path(const char *path, char *out)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash && slash != path ? (size_t)(slash - path) : 1;

	memcpy(out, path, n);
	out[n] = '\0';
}
