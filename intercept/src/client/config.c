/*
 * config.c - environment variables and the hosts file.  Loaded at the
 * process's first hooked call (inside the hook: gkc_config_load_once), or
 * in the constructor with LIBGKFS_LOG=info/debug, so it uses raw system
 * calls only for the file and plain loops for strings.  A process that
 * never makes a hooked call reads nothing; one that never touches gkfs
 * pays one small file read.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "log.h"
#include "runtime.h"   /* gk_getenv */

#define GKC_MAX_MEMBERS 65536   /* as hostsfile.MAX_MEMBERS */

struct gkc_config gkc_cfg;
static char hosts_mount[GK_PATH_MAX];
/* Guards member addresses, which a thread may update (a restarted member)
 * while others copy them. */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* out = a + b + c (NULL parts left out), cut to size as snprintf would:
 * the constructor formats no paths with libc's printf, whose code an
 * emulator (qemu-user) would translate in every process (runtime/util.c,
 * gk_getenv). */
static void
join3(char *out, size_t size, const char *a, const char *b, const char *c)
{
	const char *part[3] = {a, b, c};
	size_t n = 0;

	for (int i = 0; i < 3; i++)
		for (const char *p = part[i]; p && *p && n + 1 < size; p++)
			out[n++] = *p;
	out[n] = '\0';
}

static size_t
slen(const char *p)
{
	size_t n = 0;
	while (p[n])
		n++;
	return n;
}

static int
streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static void
default_hosts_file(char *out, size_t size)
{
	const char *xdg = gk_getenv("XDG_RUNTIME_DIR");
	char uid[24], *d = uid + sizeof(uid) - 1;
	unsigned long u = (unsigned long)syscall_no_intercept(SYS_getuid);

	if (xdg && *xdg) {
		join3(out, size, xdg, "/gkfs/hosts", NULL);
		return;
	}
	*d = '\0';
	do {
		*--d = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	join3(out, size, "/tmp/gkfs-", d, "/hosts");
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
	const char *slash = NULL;
	size_t n;
	long fd;
	int err;

	for (const char *p = file; *p; p++)   /* plain loops: join3 */
		if (*p == '/')
			slash = p;
	n = slash ? (size_t)(slash - file) : 0;
	if (n >= sizeof(dir))
		return ENAMETOOLONG;
	if (slash && n == 0)
		n = 1;   /* "/hosts": the root directory */
	if (!slash) {
		file = ".";
		n = 1;
	}
	for (size_t i = 0; i < n; i++)
		dir[i] = file[i];
	dir[n] = '\0';
	fd = syscall_no_intercept(SYS_openat, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return (int)-fd;
	err = check_owner_mode(fd, dir, 022);
	syscall_no_intercept(SYS_close, fd);
	return err;
}

/* Reads the whole file with raw calls; returns its text or NULL: in
 * stack_buf (stack_cap bytes, when given) if it fits, which spares the
 * constructor libc's malloc (join3: why), else malloc'd (free it when it
 * is not stack_buf). */
static char *
slurp_into(const char *path, int *err, unsigned bad_mode, char *stack_buf, size_t stack_cap)
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
	if (stack_buf && stack_cap > 1) {
		for (;;) {
			long r = syscall_no_intercept(SYS_read, fd, stack_buf + len,
			                              stack_cap - 1 - len);
			if (r < 0) {
				syscall_no_intercept(SYS_close, fd);
				*err = (int)-r;
				return NULL;
			}
			if (r == 0) {
				syscall_no_intercept(SYS_close, fd);
				stack_buf[len] = '\0';
				return stack_buf;
			}
			len += (size_t)r;
			if (len == stack_cap - 1)
				break;   /* may be longer: on the heap */
		}
		cap = len > cap ? len : cap;
	}
	buf = malloc(cap + 1);
	if (buf && len)
		memcpy(buf, stack_buf, len);
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

static char *
slurp(const char *path, int *err, unsigned bad_mode)
{
	return slurp_into(path, err, bad_mode, NULL, 0);
}

/* Splits a line into at most 5 whitespace-separated fields (in place). */
static int
split_fields(char *line, char *f[5])
{
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
	return nf;
}

/* Calls fn(fields, nf, arg) for each non-comment line of text (modified). */
static void
each_line(char *text, void (*fn)(char **, int, void *), void *arg)
{
	for (char *line = text, *next; line && *line; line = next) {
		for (next = line; *next && *next != '\n'; next++)
			;
		if (*next)
			*next++ = '\0';
		else
			next = NULL;
		while (*line == ' ' || *line == '\t' || *line == '\r')
			line++;
		if (!*line || *line == '#')
			continue;
		char *f[5] = {0};
		int nf = split_fields(line, f);
		if (nf > 0)
			fn(f, nf, arg);
	}
}

/* A decimal number, as strtoull(s, &end, 10) with nothing after it and
 * no overflow would take it (an optional '+'; no '-'). */
static int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s || *s == '-')
		return -1;
	if (*s == '+')
		s++;
	if (!*s)
		return -1;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

struct parse_state {
	int have_record, bad;
	uint64_t members, chunk_size;
	char uuid[40];
	char mount[GK_PATH_MAX];
	/* inline member lines, kept until N is known */
	struct { uint64_t id; char address[256]; } *inl;
	unsigned n_inl, cap_inl;
};

static void
parse_main_line(char **f, int nf, void *arg)
{
	struct parse_state *ps = arg;
	uint64_t id;

	if (streq(f[0], "cluster")) {
		if (ps->have_record || nf != 5 || slen(f[1]) >= sizeof(ps->uuid) ||
		    parse_u64(f[2], &ps->members) || parse_u64(f[3], &ps->chunk_size) ||
		    ps->members < 1 || ps->members > GKC_MAX_MEMBERS ||
		    ps->chunk_size < 4096 || (ps->chunk_size & (ps->chunk_size - 1)) ||
		    f[4][0] != '/' || slen(f[4]) >= sizeof(ps->mount)) {
			ps->bad = 1;   /* hostsfile.py refuses such a record too */
			return;
		}
		join3(ps->uuid, sizeof(ps->uuid), f[1], NULL, NULL);
		join3(ps->mount, sizeof(ps->mount), f[4], NULL, NULL);
		ps->have_record = 1;
		return;
	}
	if (nf != 5 || parse_u64(f[0], &id) || strlen(f[1]) >= sizeof(ps->inl->address))
		return;   /* hostsfile.py refuses such a line; skip it */
	if (ps->n_inl == ps->cap_inl) {
		unsigned cap = ps->cap_inl ? ps->cap_inl * 2 : 8;
		void *n = realloc(ps->inl, cap * sizeof(*ps->inl));
		if (!n)
			return;
		ps->inl = n;
		ps->cap_inl = cap;
	}
	ps->inl[ps->n_inl].id = id;
	strcpy(ps->inl[ps->n_inl].address, f[1]);
	ps->n_inl++;
}

struct member_entry {
	uint64_t want;
	int found;
	char address[256];
};

static void
parse_member_line(char **f, int nf, void *arg)
{
	struct member_entry *me = arg;
	uint64_t id;

	if (nf != 5 || parse_u64(f[0], &id) || id != me->want ||
	    strlen(f[1]) >= sizeof(me->address))
		return;
	strcpy(me->address, f[1]);
	me->found = 1;
}

/* Member i's own entry file <hosts>.d/<i>: 1 and its address if present. */
static int
read_member_entry(unsigned i, char *address, size_t size)
{
	char path[GK_PATH_MAX + 32];
	struct member_entry me = {.want = i};
	int err = 0;
	char *text;

	snprintf(path, sizeof(path), "%s.d/%u", gkc_cfg.hosts_file, i);
	if (check_parent_dir(path) != 0)
		return 0;   /* a directory others may write: its entries are not trusted */
	text = slurp(path, &err, 022);
	if (!text)
		return 0;
	each_line(text, parse_member_line, &me);
	free(text);
	if (me.found)
		snprintf(address, size, "%s", me.address);
	return me.found;
}

/* The cluster record (member count, chunk size, mount) and, with
 * `members`, every member's entry file (its address).  Without, the
 * addresses stay empty and hosts_errno says "not read yet" (EAGAIN): the
 * first connection (gk_rpc_ready) reloads in full, and a process that
 * never touches gkfs reads no member entries at all. */
static int
load_hosts(int members)
{
	/* the constructor's load (!members): the file's text and the member
	 * slots of a usual cluster in static memory, no malloc (join3: why) */
	static char boot_text[4096];
	static struct gkc_host boot_hosts[16];
	int err = check_parent_dir(gkc_cfg.hosts_file);
	char *text = err ? NULL : slurp_into(gkc_cfg.hosts_file, &err, 022,
	                                     members ? NULL : boot_text, sizeof(boot_text));
	struct parse_state ps;   /* not = {0}: 4 KiB zeroed, libc's memset */
	struct gkc_host *hosts, *old;
	unsigned listed = 0;

	if (!text) {
		gkc_cfg.hosts_errno = err ? err : EIO;
		return -gkc_cfg.hosts_errno;
	}
	ps.have_record = ps.bad = 0;
	ps.members = ps.chunk_size = 0;
	ps.uuid[0] = ps.mount[0] = '\0';
	ps.inl = NULL;
	ps.n_inl = ps.cap_inl = 0;
	hosts_mount[0] = '\0';
	each_line(text, parse_main_line, &ps);
	if (text != boot_text)
		free(text);
	if (!ps.have_record || ps.bad) {
		free(ps.inl);
		GKC_LOG(GKC_ERR, "%s: %s", gkc_cfg.hosts_file, ps.bad ? "malformed cluster record" :
		        "no cluster record (hosts file v2 needed: the member count fixes placement)");
		gkc_cfg.hosts_errno = EINVAL;
		return -EINVAL;
	}
	if (!members && ps.members <= sizeof(boot_hosts) / sizeof(boot_hosts[0]))
		hosts = boot_hosts;   /* zero: loaded once, in the constructor */
	else
		hosts = calloc(ps.members, sizeof(*hosts));
	if (!hosts) {
		free(ps.inl);
		gkc_cfg.hosts_errno = ENOMEM;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ps.members; i++)
		hosts[i].id = i;
	for (unsigned k = 0; k < ps.n_inl; k++)
		if (ps.inl[k].id < ps.members)
			join3(hosts[ps.inl[k].id].address, sizeof(hosts->address),
			      ps.inl[k].address, NULL, NULL);
	if (ps.inl)   /* free(NULL): libc code to translate at every start */
		free(ps.inl);
	for (unsigned i = 0; i < ps.members; i++) {
		if (members)
			read_member_entry(i, hosts[i].address, sizeof(hosts[i].address));
		listed += hosts[i].address[0] != '\0';
	}
	join3(hosts_mount, sizeof(hosts_mount), ps.mount, NULL, NULL);
	/* The first load (!members, gkc_config_load_once) runs while every
	 * other thread that wants the configuration waits for it: nobody else
	 * reads it yet, and the lock is libc code an emulator would translate
	 * at every start. */
	if (members)
		pthread_mutex_lock(&cfg_lock);
	old = gkc_cfg.hosts;
	gkc_cfg.hosts = hosts;
	gkc_cfg.n_hosts = (unsigned)ps.members;
	gkc_cfg.chunk_size = ps.chunk_size;
	join3(gkc_cfg.cluster, sizeof(gkc_cfg.cluster), ps.uuid, NULL, NULL);
	if (members)
		pthread_mutex_unlock(&cfg_lock);
	if (old && old != boot_hosts)
		free(old);
	if (!members) {
		gkc_cfg.hosts_errno = EAGAIN;   /* addresses not read yet */
		return -EAGAIN;
	}
	if (!listed) {
		gkc_cfg.hosts_errno = ENOENT;   /* no member registered */
		return -ENOENT;
	}
	gkc_cfg.hosts_errno = 0;
	return 0;
}

int
gkc_config_reload_hosts(void)
{
	return load_hosts(1);
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

/* The public key of the client key file at path into out (0), or -errno. */
static int
key_public(const char *path, char out[41])
{
	int err = 0;
	char *text = slurp(path, &err, 077);

	if (!text)
		return -err;
	err = key_field(text, "public", out) ? EINVAL : 0;
	memset(text, 0, strlen(text));
	free(text);
	return -err;
}

int
gkc_config_owner_key(void)
{
	/* Requests over the local stream run as the cluster's owner
	 * (docs/protocol.md 1.1): only the owner's own client key (the
	 * cluster's .keys/client.key, by public key, wherever the file in use
	 * was read from) may take it. A key issued to another user, even in
	 * a process of the owner's uid, keeps that user's rights over TCP.
	 * Decided once: key files do not change under a running program. */
	static int owner = -1;
	char path[sizeof(gkc_cfg.key_file)], mine[41], owners[41];

	if (gkc_cfg.security_off)
		return 1;
	if (owner >= 0)
		return owner;
	join3(path, sizeof(path), gkc_cfg.hosts_file, ".keys/client.key", NULL);
	owner = !key_public(gkc_cfg.key_file, mine) && !key_public(path, owners) && !strcmp(mine, owners);
	if (!owner)
		GKC_LOG(GKC_INFO, "key %s is not the cluster owner's: TCP only, no local stream",
		        gkc_cfg.key_file);
	return owner;
}

int
gkc_config_refresh_member(unsigned i)
{
	char address[256] = "";
	int changed = 0;

	if (i >= gkc_cfg.n_hosts)
		return 0;
	if (!read_member_entry(i, address, sizeof(address)))
		return 0;   /* no entry (yet): keep trying the old address */
	pthread_mutex_lock(&cfg_lock);
	if (strcmp(gkc_cfg.hosts[i].address, address)) {
		strcpy(gkc_cfg.hosts[i].address, address);
		gkc_cfg.hosts[i].gen++;
		changed = 1;
	}
	pthread_mutex_unlock(&cfg_lock);
	if (changed)
		GKC_LOG(GKC_INFO, "member %u registered again at %s", i, address);
	return changed;
}

void
gkc_config_address(unsigned i, char *out, size_t size, unsigned *gen)
{
	pthread_mutex_lock(&cfg_lock);
	snprintf(out, size, "%s", i < gkc_cfg.n_hosts ? gkc_cfg.hosts[i].address : "");
	if (gen)
		*gen = i < gkc_cfg.n_hosts ? gkc_cfg.hosts[i].gen : 0;
	pthread_mutex_unlock(&cfg_lock);
}

static void
gkc_config_load(void)
{
	const char *hf = gk_getenv("LIBGKFS_HOSTS_FILE");
	const char *mount = gk_getenv("LIBGKFS_MOUNT");
	const char *t_ms = gk_getenv("LIBGKFS_RPC_TIMEOUT_MS");
	const char *t_s = gk_getenv("LIBGKFS_RPC_TIMEOUT");

	if (hf && *hf)
		join3(gkc_cfg.hosts_file, sizeof(gkc_cfg.hosts_file), hf, NULL, NULL);
	else
		default_hosts_file(gkc_cfg.hosts_file, sizeof(gkc_cfg.hosts_file));

	gkc_cfg.timeout_ms = 10000;
	if (t_ms && *t_ms && atoi(t_ms) > 0)
		gkc_cfg.timeout_ms = atoi(t_ms);
	else if (t_s && *t_s && strtod(t_s, NULL) > 0)
		gkc_cfg.timeout_ms = (int)(strtod(t_s, NULL) * 1000.0 + 0.5);

	const char *sec = gk_getenv("LIBGKFS_SECURITY");
	const char *kf = gk_getenv("LIBGKFS_KEY_FILE");
	gkc_cfg.security_off = sec && !strcmp(sec, "off");
	const char *ls = gk_getenv("LIBGKFS_LOCAL_STREAM");
	gkc_cfg.local_stream_off = ls && !strcmp(ls, "off");
	if (kf && *kf)
		join3(gkc_cfg.key_file, sizeof(gkc_cfg.key_file), kf, NULL, NULL);
	else
		join3(gkc_cfg.key_file, sizeof(gkc_cfg.key_file), gkc_cfg.hosts_file,
		      ".keys/client.key", NULL);

	load_hosts(0);   /* member entries: at the first connection */
	if (mount && *mount)
		set_mount(mount);
	else if (hosts_mount[0])
		set_mount(hosts_mount);
	else
		set_mount("/gkfs");
	GKC_LOG(GKC_INFO, "config: hosts file %s (%u members%s), mount %s, timeout %d ms%s",
	        gkc_cfg.hosts_file, gkc_cfg.n_hosts,
	        gkc_cfg.hosts_errno && gkc_cfg.hosts_errno != EAGAIN ? ", unusable" : "",
	        gkc_cfg.mount,
	        gkc_cfg.timeout_ms, gkc_cfg.local_stream_off ? ", local stream off" : "");
}

int gkc_config_state;

void
gkc_config_load_once(void)
{
	for (;;) {
		int s = __atomic_load_n(&gkc_config_state, __ATOMIC_ACQUIRE);

		if (s == 2)
			return;
		if (s == 0 && __atomic_compare_exchange_n(&gkc_config_state, &s, 1, 0,
		                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			gkc_config_load();
			__atomic_store_n(&gkc_config_state, 2, __ATOMIC_RELEASE);
			return;
		}
		/* another thread loads: a file read, not long */
		syscall_no_intercept(SYS_sched_yield);
	}
}

/* In a fork child: a load another thread of the parent had under way
 * never finishes here; start it again (it rewrites all it sets). */
void
gkc_config_after_fork(void)
{
	if (__atomic_load_n(&gkc_config_state, __ATOMIC_ACQUIRE) == 1)
		__atomic_store_n(&gkc_config_state, 0, __ATOMIC_RELEASE);
}
