/*
 * gkfs_meta.c - gkfs_<op> for the namespace: stat, access, mkdir, unlink,
 * rmdir, rename, truncate, symlinks, times, mode/owner, statfs.
 * Mirrors gkfs_client/client.py (the reference for the semantics).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "distribution.h"
#include "forward.h"
#include "gkfs_ops.h"
#include "paths.h"
#include "rpc.h"

#define GKFS_MAGIC 0x676b6673   /* "gkfs" as statfs f_type */

uint64_t
gkfs_ino(const struct gk_record *r, const char *path)
{
	if (r->data_key[0])
		return gk_fnv1a64(r->data_key, strlen(r->data_key), GK_FNV64_OFFSET) >> 1;
	return gk_metadata_hash(path) >> 1;
}

/* Both stat structures split nanosecond times into (tv_sec, tv_nsec), in
 * fields of different types: a macro serves both. */
#define SPLIT_NS(ts, ns) \
	((ts).tv_sec = (ns) / 1000000000ULL, (ts).tv_nsec = (ns) % 1000000000ULL)

static uint64_t
block_size(void)
{
	return gk_chunk_size ? gk_chunk_size : 4096;
}

void
gkfs_fill_stat(const struct gk_record *r, const char *path, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = 0x676b;   /* one device for all of gkfs */
	st->st_ino = gkfs_ino(r, path);
	st->st_mode = r->mode;
	st->st_nlink = r->nlink;   /* 0: unlinked while open */
	st->st_uid = r->uid;
	st->st_gid = r->gid;
	st->st_size = r->size;
	st->st_blksize = block_size();
	st->st_blocks = (r->size + 511) / 512;
	SPLIT_NS(st->st_atim, r->atime_ns);
	SPLIT_NS(st->st_mtim, r->mtime_ns);
	SPLIT_NS(st->st_ctim, r->ctime_ns);
}

void
gkfs_fill_statx(const struct gk_record *r, const char *path, void *buf)
{
	struct statx *sx = buf;

	memset(sx, 0, sizeof(*sx));
	sx->stx_mask = STATX_BASIC_STATS;
	sx->stx_blksize = block_size();
	sx->stx_nlink = r->nlink;
	sx->stx_uid = r->uid;
	sx->stx_gid = r->gid;
	sx->stx_mode = r->mode;
	sx->stx_ino = gkfs_ino(r, path);
	sx->stx_size = r->size;
	sx->stx_blocks = (r->size + 511) / 512;
	SPLIT_NS(sx->stx_atime, r->atime_ns);
	SPLIT_NS(sx->stx_mtime, r->mtime_ns);
	SPLIT_NS(sx->stx_ctime, r->ctime_ns);
	sx->stx_dev_major = 0;
	sx->stx_dev_minor = 0x676b;
}

/* Where a symlink at `link` (gkfs path) with `target` points: 0 with the
 * gkfs path in out, or GK_REDIRECT with an absolute kernel path. */
static int
link_target(const char *link, const char *target, char *out, char *redirect)
{
	char joined[2 * GK_PATH_MAX + 2];
	struct gk_resolved r;
	int rc;

	if (target[0] == '/') {
		snprintf(joined, sizeof(joined), "%s", target);
	} else {
		const char *slash = strrchr(link, '/');
		int plen = slash ? (int)(slash - link) : 0;
		snprintf(joined, sizeof(joined), "%s%.*s/%s", gkc_cfg.mount, plen, link, target);
	}
	rc = gk_resolve(AT_FDCWD, joined, &r);
	if (rc < 0)
		return rc;
	if (rc == GK_GKFS) {
		strcpy(out, r.path);
		return 0;
	}
	if (rc == GK_KERNEL_ABS)
		snprintf(redirect, GK_PATH_MAX + 1, "%s", r.path);
	else
		snprintf(redirect, GK_PATH_MAX + 1, "%s", joined);
	return GK_REDIRECT;
}

int
gkfs_through_links(const char *path, char *out, char *redirect, int *hops)
{
	char p[GK_PATH_MAX + 1], up[GK_PATH_MAX + 1], t[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc;

	/* The nearest ancestor with a record decides (records exist only for
	 * real paths, so everything above it is a real directory). */
	snprintf(p, sizeof(p), "%s", path);
	while (strcmp(p, "/")) {
		gk_parent_path(p, up);
		if (!strcmp(up, "/"))
			break;
		rc = gk_fwd_stat(up, &r);
		if (rc == -ENOENT) {
			strcpy(p, up);
			continue;
		}
		if (rc)
			return rc;
		if ((r.mode & GK_S_IFMT) == GK_S_IFDIR)
			return -ENOENT;
		if ((r.mode & GK_S_IFMT) != GK_S_IFLNK)
			return -ENOTDIR;
		if (++*hops > GK_MAX_SYMLINK_HOPS)
			return -ELOOP;
		const char *rest = path + strlen(up);     /* "/..." */
		rc = link_target(up, r.target, t, redirect);
		if (rc == GK_REDIRECT) {
			size_t n = strlen(redirect);
			if (n + strlen(rest) > GK_PATH_MAX)
				return -ENAMETOOLONG;
			memcpy(redirect + n, rest, strlen(rest) + 1);
			return GK_REDIRECT;
		}
		if (rc)
			return rc;
		if (strlen(t) + strlen(rest) > GK_PATH_MAX)
			return -ENAMETOOLONG;
		snprintf(out, GK_PATH_MAX + 1, "%s%s", strcmp(t, "/") ? t : "", rest);
		return GK_RETRY;
	}
	return -ENOENT;
}

int
gkfs_dir_only_error(const char *path)
{
	char redirect[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc = gkfs_record(path, 1, &r, NULL, redirect);

	if (rc == GK_REDIRECT)
		return -ENOTDIR;   /* a link out of gkfs: not worth a kernel walk */
	if (rc)
		return rc;
	return (r.mode & GK_S_IFMT) == GK_S_IFDIR ? -EISDIR : -ENOTDIR;
}

int
gkfs_record(const char *path, int follow, struct gk_record *r, char *final_path,
            char *redirect)
{
	char p[GK_PATH_MAX + 1], next[GK_PATH_MAX + 1];
	int rc, hops = 0;

	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		rc = gk_fwd_stat(p, r);
		if (rc == -ENOENT) {
			/* a symlink in an earlier component? */
			rc = gkfs_through_links(p, next, redirect, &hops);
			if (rc != GK_RETRY)
				return rc;
			strcpy(p, next);
			continue;
		}
		if (rc)
			return rc;
		if (!follow || (r->mode & GK_S_IFMT) != GK_S_IFLNK) {
			if (final_path)
				strcpy(final_path, p);
			return 0;
		}
		if (++hops > GK_MAX_SYMLINK_HOPS)
			return -ELOOP;
		rc = link_target(p, r->target, next, redirect);
		if (rc)
			return rc;
		strcpy(p, next);
	}
}

static mode_t
current_umask(void)
{
	mode_t m = (mode_t)syscall_no_intercept(SYS_umask, 022);
	syscall_no_intercept(SYS_umask, m);
	return m;
}

int
gkfs_access(const char *path, int mode, int flags, int must_dir, char *redirect)
{
	struct gk_record r;
	int rc = gkfs_record(path, must_dir || !(flags & AT_SYMLINK_NOFOLLOW), &r, NULL,
	                     redirect);
	unsigned perm, uid, gid;

	if (!rc && must_dir && (r.mode & GK_S_IFMT) != GK_S_IFDIR)
		return -ENOTDIR;
	if (rc || mode == F_OK)
		return rc;
	uid = (flags & AT_EACCESS) ? syscall_no_intercept(SYS_geteuid)
	                           : syscall_no_intercept(SYS_getuid);
	gid = (flags & AT_EACCESS) ? syscall_no_intercept(SYS_getegid)
	                           : syscall_no_intercept(SYS_getgid);
	if (uid == 0) {
		/* root: everything but executing a file nobody may execute */
		if ((mode & X_OK) && (r.mode & GK_S_IFMT) != GK_S_IFDIR && !(r.mode & 0111))
			return -EACCES;
		return 0;
	}
	if (uid == r.uid)
		perm = (r.mode >> 6) & 7;
	else if (gid == r.gid)
		perm = (r.mode >> 3) & 7;
	else
		perm = r.mode & 7;
	if ((mode & R_OK && !(perm & 4)) || (mode & W_OK && !(perm & 2)) ||
	    (mode & X_OK && !(perm & 1)))
		return -EACCES;
	return 0;
}

/* Runs `op` on path; when it finds nothing there, follows symlinks in the
 * earlier components and runs it again (the last component is never
 * followed: mkdir, unlink, rmdir, symlink, rename act on the name). */
#define THROUGH_LINKS(p, redirect, call) ({                                  \
	int _hops = 0, _rc;                                                  \
	char _next[GK_PATH_MAX + 1];                                         \
	for (;;) {                                                           \
		_rc = (call);                                                \
		if (_rc != -ENOENT)                                          \
			break;                                               \
		_rc = gkfs_through_links(p, _next, redirect, &_hops);        \
		if (_rc != GK_RETRY)                                         \
			break;                                               \
		strcpy(p, _next);                                            \
	}                                                                    \
	_rc; })

int
gkfs_mkdir(const char *path, mode_t mode, char *redirect)
{
	char p[GK_PATH_MAX + 1];
	struct gk_record r;
	int created;
	mode_t m = GK_S_IFDIR | (mode & 07777 & ~current_umask());

	snprintf(p, sizeof(p), "%s", path);
	return THROUGH_LINKS(p, redirect, gk_fwd_create(p, m, 1, &r, &created));
}

static void
drop_data(const struct gk_record *r)
{
	/* An empty file has no chunks (see client.py _drop_data). */
	if ((r->mode & GK_S_IFMT) == GK_S_IFREG && r->data_key[0] && r->size > 0)
		gk_fwd_remove_chunks(r->data_key, r->cap);
}

int
gkfs_unlink(const char *path, char *redirect)
{
	char p[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc;

	snprintf(p, sizeof(p), "%s", path);
	rc = THROUGH_LINKS(p, redirect, gk_fwd_remove(p, 0, NULL, &r));
	if (!rc && !r.held)      /* held: open somewhere, the daemon keeps it */
		drop_data(&r);
	else if (!rc)
		gk_orphan_note(r.data_key);
	return rc;
}

int
gkfs_rmdir(const char *path, char *redirect)
{
	char p[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc;

	if (!strcmp(path, "/"))
		return -EBUSY;
	snprintf(p, sizeof(p), "%s", path);
	rc = THROUGH_LINKS(p, redirect, gk_fwd_stat(p, &r));
	if (rc)
		return rc;
	if ((r.mode & GK_S_IFMT) != GK_S_IFDIR)
		return -ENOTDIR;
	rc = gk_fwd_has_children(p);
	if (rc < 0)
		return rc;
	if (rc > 0)
		return -ENOTEMPTY;
	return gk_fwd_remove(p, 1, NULL, NULL);
}

int
gkfs_rename(const char *old_path, const char *new_path, unsigned flags)
{
	char o[GK_PATH_MAX + 1], n[GK_PATH_MAX + 1], np[GK_PATH_MAX + 1];
	char rn_parent[GK_PATH_MAX + 1];
	char redirect[GK_PATH_MAX + 1];
	struct gk_record ro, rn, rp, replaced;
	int rc, has_new, new_children = 0, old_children = 0;
	size_t ol;

	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return -EINVAL;   /* RENAME_EXCHANGE / WHITEOUT: not supported */
	snprintf(o, sizeof(o), "%s", old_path);
	snprintf(n, sizeof(n), "%s", new_path);
	if (!strcmp(o, "/") || !strcmp(n, "/"))
		return -EBUSY;
	/* earlier components may be symlinks (the names themselves are not
	 * followed); one leading out of gkfs makes it a cross-device rename */
	rc = THROUGH_LINKS(o, redirect, gk_fwd_stat(o, &ro));
	if (rc)
		return rc == GK_REDIRECT ? -EXDEV : rc;
	gk_parent_path(n, rn_parent);
	rc = gkfs_record(rn_parent, 1, &rp, np, redirect);
	if (rc)
		return rc == GK_REDIRECT ? -EXDEV : rc;
	if (strcmp(np, "/"))
		snprintf(n, sizeof(n), "%s/%s", np, strrchr(new_path, '/') + 1);
	else
		snprintf(n, sizeof(n), "/%s", strrchr(new_path, '/') + 1);
	ol = strlen(o);
	if (!strcmp(n, "/"))
		return -EBUSY;
	if (!strncmp(n, o, ol) && n[ol] == '/')
		return -EINVAL;
	if ((rp.mode & GK_S_IFMT) != GK_S_IFDIR)
		return -ENOTDIR;
	if (!strcmp(o, n))
		return 0;
	rc = gk_fwd_stat(n, &rn);
	if (rc && rc != -ENOENT)
		return rc;
	has_new = rc == 0;
	if (has_new && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (has_new) {
		int old_dir = (ro.mode & GK_S_IFMT) == GK_S_IFDIR;
		int new_dir = (rn.mode & GK_S_IFMT) == GK_S_IFDIR;
		if (old_dir && !new_dir)
			return -ENOTDIR;
		if (!old_dir && new_dir)
			return -EISDIR;
		if (new_dir && (new_children = gk_fwd_has_children(n)) != 0)
			return new_children < 0 ? new_children : -ENOTEMPTY;
	}
	if ((ro.mode & GK_S_IFMT) == GK_S_IFDIR &&
	    (old_children = gk_fwd_has_children(o)) != 0) {
		/* children's metadata lives with their own paths' owners:
		 * every record of the tree moves, behind a fence (tree_move.c) */
		if (old_children < 0)
			return old_children;
		return gkfs_move_tree(o, n, has_new);
	}
	memset(&replaced, 0, sizeof(replaced));
	if (gk_metadata_owner(o, gkc_cfg.n_hosts) == gk_metadata_owner(n, gkc_cfg.n_hosts)) {
		rc = gk_fwd_rename(o, n, &replaced);
	} else {
		rc = gk_fwd_insert(n, o, &ro, 1, &replaced);
		if (!rc)
			rc = gk_fwd_remove(o, -1, ro.data_key[0] ? ro.data_key : NULL, NULL);
	}
	if (!rc && replaced.mode && !replaced.held && strcmp(replaced.data_key, ro.data_key))
		drop_data(&replaced);
	else if (!rc && replaced.mode && replaced.held)
		gk_orphan_note(replaced.data_key);
	return rc;
}

static int
truncate_record(const char *path, const struct gk_record *r, int64_t len, const char *key,
                const char *cap)
{
	struct gk_record nr;
	int rc;

	if (len < 0)
		return -EINVAL;
	if ((r->mode & GK_S_IFMT) == GK_S_IFDIR)
		return -EISDIR;
	rc = gk_fwd_truncate(path, key, cap, (uint64_t)len, &nr);
	if (!rc && nr.data_key[0])   /* our capability while it is the same file, else the reply's */
		rc = gk_fwd_truncate_chunks(nr.data_key,
		                            cap && !strcmp(nr.data_key, r->data_key) ? cap : nr.cap,
		                            (uint64_t)len);
	return rc;
}

int
gkfs_truncate(const char *path, int64_t len)
{
	char final[GK_PATH_MAX + 1], redirect[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc = gkfs_record(path, 1, &r, final, redirect);

	if (rc == GK_REDIRECT)
		return -EXDEV;   /* not reached in practice: hooks pass redirect */
	if (rc)
		return rc;
	return truncate_record(final, &r, len, NULL, r.cap);
}

int
gkfs_ftruncate(struct gk_file *f, int64_t len)
{
	struct gk_record r;
	int acc = f->ofd->flags & O_ACCMODE;
	int rc;

	if (acc == O_RDONLY || f->ofd->is_dir)
		return -EINVAL;
	rc = gk_fwd_fstat(f->ofd->path, f->ofd->data_key, &r);
	if (rc)
		return rc;
	return truncate_record(f->ofd->path, &r, len, f->ofd->data_key, f->ofd->cap);
}

int
gkfs_symlink(const char *target, const char *linkpath, char *redirect)
{
	char parent[GK_PATH_MAX + 1], lp[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc;

	if (!*target)
		return -ENOENT;
	gk_parent_path(linkpath, lp);
	rc = gkfs_record(lp, 1, &r, parent, redirect);
	if (rc == GK_REDIRECT) {
		size_t n = strlen(redirect);
		snprintf(redirect + n, GK_PATH_MAX + 1 - n, "%s", strrchr(linkpath, '/'));
		return GK_REDIRECT;
	}
	if (rc)
		return rc;
	if ((r.mode & GK_S_IFMT) != GK_S_IFDIR)
		return -ENOTDIR;
	snprintf(lp, sizeof(lp), "%s%s", strcmp(parent, "/") ? parent : "", strrchr(linkpath, '/'));
	return gk_fwd_symlink(lp, target);
}

long
gkfs_readlink(const char *path, char *buf, size_t size, char *redirect)
{
	char t[GK_PATH_MAX + 1], p[GK_PATH_MAX + 1];
	int rc;
	size_t n;

	snprintf(p, sizeof(p), "%s", path);
	rc = THROUGH_LINKS(p, redirect, gk_fwd_readlink(p, t, sizeof(t)));

	if (rc)
		return rc;
	n = strlen(t);
	if (n > size)
		n = size;
	memcpy(buf, t, n);
	return (long)n;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	syscall_no_intercept(SYS_clock_gettime, CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t
time_arg(const struct timespec *t, uint64_t now)
{
	if (!t || t->tv_nsec == UTIME_NOW)
		return now;
	if (t->tv_nsec == UTIME_OMIT)
		return UINT64_MAX;
	return (uint64_t)t->tv_sec * 1000000000ULL + t->tv_nsec;
}

int
gkfs_utimens(const char *path, const struct timespec *times, int follow)
{
	char final[GK_PATH_MAX + 1], redirect[GK_PATH_MAX + 1];
	struct gk_record r;
	uint64_t now = now_ns();
	int rc = gkfs_record(path, follow, &r, final, redirect);

	if (rc)
		return rc == GK_REDIRECT ? -EXDEV : rc;
	if (times && times[0].tv_nsec != UTIME_NOW && times[0].tv_nsec != UTIME_OMIT &&
	    (times[0].tv_nsec < 0 || times[0].tv_nsec > 999999999))
		return -EINVAL;
	if (times && times[1].tv_nsec != UTIME_NOW && times[1].tv_nsec != UTIME_OMIT &&
	    (times[1].tv_nsec < 0 || times[1].tv_nsec > 999999999))
		return -EINVAL;
	if (!times || (times[0].tv_nsec == UTIME_NOW && times[1].tv_nsec == UTIME_NOW))
		return gk_fwd_utimens_now(final);
	return gk_fwd_utimens(final, time_arg(times ? &times[0] : NULL, now),
	                      time_arg(times ? &times[1] : NULL, now));
}

/* chmod/chown: the metadata owner changes the record in place (protocol
 * op setattr, one LMDB transaction), so a directory with children and a
 * file being written to are changed like any other record.  The kernel's
 * ownership rules are applied here, as the daemon trusts its clients. */
static int
set_attr(const char *path, int follow, long mode, long uid, long gid)
{
	char final[GK_PATH_MAX + 1], redirect[GK_PATH_MAX + 1];
	struct gk_record r;
	int rc = gkfs_record(path, follow, &r, final, redirect);

	if (rc)
		return rc == GK_REDIRECT ? -EXDEV : rc;
	if (mode >= 0 && (r.mode & GK_S_IFMT) == GK_S_IFLNK)
		return -EOPNOTSUPP;   /* as Linux: a symlink's own mode is fixed */
	if ((mode < 0 || (r.mode & 07777) == (uint64_t)(mode & 07777)) &&
	    (uid < 0 || r.uid == (uint64_t)uid) && (gid < 0 || r.gid == (uint64_t)gid))
		return 0;    /* nothing changes (tar, cp -p restoring what is there) */
	long me = syscall_no_intercept(SYS_geteuid);
	if (me != 0 && ((uid >= 0 && (uint64_t)uid != r.uid) || (mode >= 0 && r.uid != (uint64_t)me)))
		return -EPERM;
	return gk_fwd_setattr(final, mode >= 0 ? (mode & 07777) : -1, uid, gid);
}

int
gkfs_chmod(const char *path, mode_t mode, int follow)
{
	return set_attr(path, follow, mode & 07777, -1, -1);
}

int
gkfs_chown(const char *path, long uid, long gid, int follow)
{
	struct gk_record r;
	int rc;

	if (uid == -1 && gid == -1) {
		char redirect[GK_PATH_MAX + 1];
		rc = gkfs_record(path, follow, &r, NULL, redirect);
		return rc == GK_REDIRECT ? -EXDEV : rc;
	}
	return set_attr(path, follow, -1, uid == -1 ? -1 : uid & 0xffffffffL,
	                gid == -1 ? -1 : gid & 0xffffffffL);
}

int
gkfs_statfs(struct statfs *st)
{
	struct gk_fsstat s;
	int rc = gk_fwd_statfs(&s);

	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->f_type = GKFS_MAGIC;
	st->f_bsize = 4096;
	st->f_frsize = 4096;
	st->f_blocks = s.total_bytes / 4096;
	st->f_bfree = s.free_bytes / 4096;
	st->f_bavail = s.avail_bytes / 4096;
	st->f_files = s.files + 1000000;
	st->f_ffree = 1000000;
	st->f_namelen = s.name_max ? s.name_max : GK_NAME_MAX;
	return 0;
}
