/*
 * config.c - environment variables and the hosts file.  Runs in the
 * constructor, so it uses raw system calls only for the file (nothing of
 * ours is intercepted yet, but keep it obviously safe) and plain libc for
 * strings.  Processes that never touch gkfs pay one small file read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "log.h"

struct gkc_config gkc_cfg;
static char hosts_mount[GK_PATH_MAX];

static void
set_mount(const char *m)
{
	size_t n = strlen(m);

	while (n > 1 && m[n - 1] == '/')
		n--;
	if (n == 0 || m[0] != '/' || n >= sizeof(gkc_cfg.mount) ||
	    (n == 1 && m[0] == '/')) {
		/* "/" as a mount prefix would capture every path: refuse */
		m = "/gkfs";
		n = 5;
	}
	memcpy(gkc_cfg.mount, m, n);
	gkc_cfg.mount[n] = '\0';
	gkc_cfg.mount_len = n;
}

static void
default_hosts_file(char *out, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (xdg && *xdg)
		snprintf(out, size, "%s/gkfs/hosts", xdg);
	else
		snprintf(out, size, "/tmp/gkfs-%ld/hosts",
		         syscall_no_intercept(SYS_getuid));
}

static int
cmp_host(const void *a, const void *b)
{
	const struct gkc_host *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* A file another user owns (root excepted) or may write (bad_mode bits set)
 * could have been planted to send our data elsewhere: EACCES. */
static int
check_owner_mode(long fd, const char *path, unsigned bad_mode)
{
	struct stat sb;
	long me = syscall_no_intercept(SYS_geteuid);

	if (syscall_no_intercept(SYS_fstat, fd, &sb) != 0)
		return EIO;
	if ((sb.st_uid != (uid_t)me && sb.st_uid != 0) || (sb.st_mode & bad_mode)) {
		static int warned;
		gkc_warn_once(&warned, "refusing %s: owned by uid %u, mode %04o (must be yours and "
		              "%s by others; fix with chmod %s)", path, (unsigned)sb.st_uid,
		              (unsigned)(sb.st_mode & 07777),
		              bad_mode == 077 ? "not readable or writable" : "not writable",
		              bad_mode == 077 ? "go-rwx" : "go-w");
		return EACCES;
	}
	return 0;
}

/* The directory holding `file` must be ours (or root's) and writable by
 * nobody else, or someone could swap the file: 0 or a positive errno. */
static int
check_parent_dir(const char *file)
{
	char dir[GK_PATH_MAX];
	const char *slash = strrchr(file, '/');
	size_t n = slash ? (size_t)(slash - file) : 0;
	long fd;
	int err;

	if (n >= sizeof(dir))
		return ENAMETOOLONG;
	if (slash && n == 0)
		n = 1;   /* "/hosts": the root directory */
	memcpy(dir, slash ? file : ".", slash ? n : 1);
	dir[slash ? n : 1] = '\0';
	fd = syscall_no_intercept(SYS_openat, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return (int)-fd;
	err = check_owner_mode(fd, dir, 022);
	syscall_no_intercept(SYS_close, fd);
	return err;
}

/* Reads the whole file with raw calls; returns malloc'd text or NULL. */
static char *
slurp(const char *path, int *err, unsigned bad_mode)
{
	long fd = syscall_no_intercept(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, len = 0;
	char *buf;

	if (fd < 0) {
		*err = (int)-fd;
		return NULL;
	}
	if ((*err = check_owner_mode(fd, path, bad_mode)) != 0) {
		syscall_no_intercept(SYS_close, fd);
		return NULL;
	}
	buf = malloc(cap + 1);
	for (;;) {
		if (!buf)
			break;
		if (len == cap) {
			char *nb = realloc(buf, cap * 2 + 1);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		long r = syscall_no_intercept(SYS_read, fd, buf + len, cap - len);
		if (r < 0) {
			free(buf);
			buf = NULL;
			*err = (int)-r;
			break;
		}
		if (r == 0)
			break;
		len += r;
	}
	syscall_no_intercept(SYS_close, fd);
	if (buf)
		buf[len] = '\0';
	else if (!*err)
		*err = ENOMEM;
	return buf;
}

int
gkc_config_reload_hosts(void)
{
	int err = check_parent_dir(gkc_cfg.hosts_file);
	char *text = err ? NULL : slurp(gkc_cfg.hosts_file, &err, 022);
	struct gkc_host *hosts = NULL;
	unsigned n = 0, cap = 0;

	if (!text) {
		gkc_cfg.hosts_errno = err ? err : EIO;
		return -gkc_cfg.hosts_errno;
	}
	hosts_mount[0] = '\0';
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*line == ' ' || *line == '\t' || *line == '\r')
			line++;
		if (!*line || *line == '#')
			continue;
		char *f[5] = {0};
		int nf = 0;
		for (char *s = line; nf < 5 && *s;) {
			while (*s == ' ' || *s == '\t' || *s == '\r')
				*s++ = '\0';
			if (!*s)
				break;
			f[nf++] = s;
			while (*s && *s != ' ' && *s != '\t' && *s != '\r')
				s++;
		}
		if (nf < 2 || strlen(f[1]) >= sizeof(hosts->address))
			continue;   /* hostsfile.py refuses such a file; skip the line */
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct gkc_host *nh = realloc(hosts, cap * sizeof(*hosts));
			if (!nh)
				break;
			hosts = nh;
		}
		hosts[n].id = strtoull(f[0], NULL, 10);
		strcpy(hosts[n].address, f[1]);
		if (nf >= 5 && !hosts_mount[0] && strlen(f[4]) < sizeof(hosts_mount))
			strcpy(hosts_mount, f[4]);
		n++;
	}
	free(text);
	if (!n) {
		free(hosts);
		gkc_cfg.hosts_errno = ENOENT;   /* no daemon registered */
		return -ENOENT;
	}
	qsort(hosts, n, sizeof(*hosts), cmp_host);
	free(gkc_cfg.hosts);
	gkc_cfg.hosts = hosts;
	gkc_cfg.n_hosts = n;
	gkc_cfg.hosts_errno = 0;
	return 0;
}

/* "<field> <40 Z85 chars>" lines (security.py's client key format). */
static int
key_field(const char *text, const char *field, char out[41])
{
	size_t fl = strlen(field);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, field, fl) || p[fl] != ' ')
			continue;
		const char *v = p + fl + 1;
		size_t n = strcspn(v, " \t\r\n");
		if (n != 40)
			return -1;
		memcpy(out, v, 40);
		out[40] = '\0';
		return 0;
	}
	return -1;
}

int
gkc_config_load_key(void)
{
	int err = 0;
	char *text;

	if (gkc_cfg.security_off || gkc_cfg.key_loaded)
		return 0;
	text = slurp(gkc_cfg.key_file, &err, 077);
	if (!text)
		return -err;
	if (key_field(text, "server-public", gkc_cfg.server_key) ||
	    key_field(text, "public", gkc_cfg.public_key) ||
	    key_field(text, "secret", gkc_cfg.secret_key))
		err = EINVAL;
	memset(text, 0, strlen(text));   /* the secret does not linger on the heap */
	free(text);
	if (!err)
		gkc_cfg.key_loaded = 1;
	return -err;
}

void
gkc_config_load(void)
{
	const char *hf = getenv("LIBGKFS_HOSTS_FILE");
	const char *mount = getenv("LIBGKFS_MOUNT");
	const char *t_ms = getenv("LIBGKFS_RPC_TIMEOUT_MS");
	const char *t_s = getenv("LIBGKFS_RPC_TIMEOUT");

	if (hf && *hf)
		snprintf(gkc_cfg.hosts_file, sizeof(gkc_cfg.hosts_file), "%s", hf);
	else
		default_hosts_file(gkc_cfg.hosts_file, sizeof(gkc_cfg.hosts_file));

	gkc_cfg.timeout_ms = 10000;
	if (t_ms && *t_ms && atoi(t_ms) > 0)
		gkc_cfg.timeout_ms = atoi(t_ms);
	else if (t_s && *t_s && strtod(t_s, NULL) > 0)
		gkc_cfg.timeout_ms = (int)(strtod(t_s, NULL) * 1000.0 + 0.5);

	const char *sec = getenv("LIBGKFS_SECURITY");
	const char *kf = getenv("LIBGKFS_KEY_FILE");
	gkc_cfg.security_off = sec && !strcmp(sec, "off");
	if (kf && *kf)
		snprintf(gkc_cfg.key_file, sizeof(gkc_cfg.key_file), "%s", kf);
	else
		snprintf(gkc_cfg.key_file, sizeof(gkc_cfg.key_file), "%s.keys/client.key",
		         gkc_cfg.hosts_file);

	gkc_config_reload_hosts();
	if (mount && *mount)
		set_mount(mount);
	else if (hosts_mount[0])
		set_mount(hosts_mount);
	else
		set_mount("/gkfs");
	GKC_LOG(GKC_INFO, "config: hosts file %s (%u daemons%s), mount %s, timeout %d ms",
	        gkc_cfg.hosts_file, gkc_cfg.n_hosts,
	        gkc_cfg.hosts_errno ? ", unusable" : "", gkc_cfg.mount,
	        gkc_cfg.timeout_ms);
}
