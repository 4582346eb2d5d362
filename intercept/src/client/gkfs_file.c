/*
 * gkfs_file.c - gkfs_<op> on descriptors: open, read, write, seek, stat,
 * truncate, sync, allocate, directory listing.
 *
 * Writes: data first, then update_size (a failed write never leaves a size
 * covering bytes no daemon holds), folded into the write request when it
 * goes to the metadata owner (forward.c, docs/performance.md); O_APPEND: update_size first, which hands
 * out the offset atomically (docs/protocol.md 4.3).  Reads: the size from
 * the metadata owner decides EOF; daemons zero-fill holes below it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libsyscall_intercept_hook_point.h"
#include "config.h"
#include "distribution.h"
#include "forward.h"
#include "gkfs_ops.h"
#include "log.h"
#include "paths.h"
#include "rpc.h"

#ifndef O_PATH
#define O_PATH 010000000
#endif

/* The owner id of this process's holds (docs/protocol.md 4.6): the same
 * process id as its record locks. */
static void
hold_owner(uint64_t id, char *buf, size_t n)
{
	snprintf(buf, n, "p%016llx", (unsigned long long)id);
}

void
gkfs_last_close(struct gk_file *f)
{
	char owner[40];
	uint64_t id = __atomic_exchange_n(&f->ofd->hold_owner, 0, __ATOMIC_ACQ_REL);

	if (!id)
		return;
	hold_owner(id, owner, sizeof(owner));
	/* a file this process unlinked while open: wait, so its chunks go now;
	 * any other close does not wait for the daemon */
	gk_fwd_release(f->ofd->path, f->ofd->data_key, owner, gk_orphan_forget(f->ofd->data_key));
}

/* Data keys of the last files this process removed while they were open
 * (a ring): every close of them releases synchronously (there may be
 * several open file descriptions), reclaiming at the last one. */
#define MAX_ORPHANS 64
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static char orphans[MAX_ORPHANS][80];
static unsigned n_orphans;

void
gk_orphan_note(const char *data_key)
{
	pthread_mutex_lock(&orphans_lock);
	snprintf(orphans[n_orphans++ % MAX_ORPHANS], sizeof(orphans[0]), "%s", data_key);
	pthread_mutex_unlock(&orphans_lock);
}

int
gk_orphan_forget(const char *data_key)
{
	int found = 0;

	if (!__atomic_load_n(&n_orphans, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&orphans_lock);
	for (unsigned i = 0; i < MAX_ORPHANS && i < n_orphans && !found; i++)
		found = !strcmp(orphans[i], data_key);
	pthread_mutex_unlock(&orphans_lock);
	return found;
}

int
gkfs_open(const char *path, int flags, mode_t mode, char *redirect)
{
	char p[GK_PATH_MAX + 1], hold[40];
	struct gk_record r;
	int acc = flags & O_ACCMODE, created = 0, rc;
	uint64_t me = gk_rpc_process_owner();

	hold_owner(me, hold, sizeof(hold));
	if (acc == 3 && !(flags & O_PATH))
		return -EINVAL;
	if (flags & O_PATH)
		acc = O_RDONLY;
	if ((flags & O_TMPFILE) == O_TMPFILE)
		return -EOPNOTSUPP;   /* no unnamed files in gkfs */
	snprintf(p, sizeof(p), "%s", path);
	for (int hops = 0;;) {
		if (flags & O_CREAT) {
			mode_t um = (mode_t)syscall_no_intercept(SYS_umask, 022);
			syscall_no_intercept(SYS_umask, um);
			rc = gk_fwd_create_hold(p, GK_S_IFREG | (mode & 07777 & ~um),
			                        !!(flags & O_EXCL), hold, &r, &created);
		} else {
			rc = gk_fwd_stat_hold(p, hold, &r);
		}
		if (rc == -ENOENT) {
			/* a symlink in an earlier component, or "file/x": ENOTDIR */
			char next[GK_PATH_MAX + 1];
			rc = gkfs_through_links(p, next, redirect, &hops);
			if (rc != GK_RETRY)
				return rc;
			snprintf(p, sizeof(p), "%s", next);
			continue;
		}
		if (rc)
			return rc;
		if ((r.mode & GK_S_IFMT) != GK_S_IFLNK)
			break;
		if (flags & O_NOFOLLOW) {
			if (flags & O_PATH)
				break;
			return -ELOOP;
		}
		if (flags & O_EXCL)
			return -EEXIST;
		if (++hops > GK_MAX_SYMLINK_HOPS)
			return -ELOOP;
		/* the link's target, relative to the link's directory */
		char joined[2 * GK_PATH_MAX + 2];
		if (r.target[0] == '/') {
			snprintf(joined, sizeof(joined), "%s", r.target);
		} else {
			const char *slash = strrchr(p, '/');
			snprintf(joined, sizeof(joined), "%s%.*s/%s", gkc_cfg.mount,
			         (int)(slash - p), p, r.target);
		}
		struct gk_resolved res;
		rc = gk_resolve(AT_FDCWD, joined, &res);
		if (rc < 0)
			return rc;
		if (rc != GK_GKFS) {
			snprintf(redirect, GK_PATH_MAX + 1, "%s",
			         rc == GK_KERNEL_ABS ? res.path : joined);
			return GK_REDIRECT;
		}
		snprintf(p, sizeof(p), "%s", res.path);
	}
	int is_dir = (r.mode & GK_S_IFMT) == GK_S_IFDIR;
	/* the daemon registered this open (a hold) for a regular file: an
	 * unlink keeps the data until the description's last close */
	int held = (r.mode & GK_S_IFMT) == GK_S_IFREG;
	if (is_dir && (acc != O_RDONLY || (flags & O_TRUNC)))
		rc = -EISDIR;
	else if (!is_dir && (flags & O_DIRECTORY))
		rc = -ENOTDIR;
	else
		rc = 0;
	if (!rc && (flags & O_TRUNC) && acc != O_RDONLY && !created && r.size > 0 &&
	    (r.mode & GK_S_IFMT) == GK_S_IFREG) {
		struct gk_record nr;
		rc = gk_fwd_truncate(p, r.data_key, r.cap, 0, &nr);
		if (!rc)
			rc = gk_fwd_truncate_chunks(r.data_key, r.cap, 0);
	}
	if (!rc)
		rc = gk_file_open(p, (uint32_t)((flags & ~O_ACCMODE) | acc), is_dir, r.data_key, r.cap,
		                  held ? me : 0);
	if (rc < 0 && held)
		gk_fwd_release(p, r.data_key, hold, 1);
	GKC_LOG(GKC_INFO, "open %s flags %#x -> %d", p, flags, rc);
	return rc;
}

static int
readable(struct gk_file *f)
{
	int acc = f->ofd->flags & O_ACCMODE;
	return (acc == O_RDONLY || acc == O_RDWR) && !(f->ofd->flags & O_PATH);
}

static int
writable(struct gk_file *f)
{
	int acc = f->ofd->flags & O_ACCMODE;
	return (acc == O_WRONLY || acc == O_RDWR) && !(f->ofd->flags & O_PATH);
}

/* What read/write (off 0) and pread/pwrite check before any transfer, in
 * the kernel's order: access mode, directory, negative offset. */
static int
io_check(struct gk_file *f, int is_write, int64_t off)
{
	if (!(is_write ? writable(f) : readable(f)))
		return -EBADF;
	if (f->ofd->is_dir)
		return -EISDIR;
	if (off < 0)
		return -EINVAL;
	return 0;
}

/* The kernel moves at most this many bytes per call (MAX_RW_COUNT). */
static size_t
io_cap(size_t count)
{
	return count > 0x7ffff000 ? 0x7ffff000 : count;
}

ssize_t
gkfs_pread(struct gk_file *f, void *buf, size_t count, int64_t off)
{
	struct gk_record r;
	int rc;

	if ((rc = io_check(f, 0, off)) != 0)
		return rc;
	if (!count)
		return 0;
	if ((uint64_t)off < (uint64_t)INT64_MAX) {
		/* One RPC when the chunks live on the metadata owner: the daemon
		 * looks the size up before reading and clips (no chunk past the
		 * largest file is asked for). */
		uint64_t room = (uint64_t)INT64_MAX - (uint64_t)off;
		uint64_t n = io_cap(count);
		int folded = 0;
		ssize_t got = gk_fwd_read_sized(f->ofd->path, f->ofd->data_key, f->ofd->cap, buf,
		                                (uint64_t)off, n < room ? n : room, &folded);
		if (folded || got < 0)
			return got;
	}
	rc = gk_fwd_fstat(f->ofd->path, f->ofd->data_key, &r);
	if (rc)
		return rc;
	if ((uint64_t)off >= r.size)
		return 0;
	if (count > r.size - (uint64_t)off)
		count = r.size - (uint64_t)off;
	count = io_cap(count);
	/* fstat by the descriptor's key: the same file, so its capability */
	return gk_fwd_read(r.data_key[0] ? r.data_key : f->ofd->data_key, f->ofd->cap, buf,
	                   (uint64_t)off, count, r.size);
}

/* An O_APPEND write: update_size first, which hands out the offset (*at)
 * atomically, so concurrent appenders never overlap; then the data. */
static ssize_t
append_write(struct gk_file *f, const void *buf, size_t count, uint64_t *at)
{
	int rc = gk_fwd_update_size(f->ofd->path, f->ofd->data_key, f->ofd->cap, 0, count, 1, at);

	if (rc)
		return rc;
	return gk_fwd_write(f->ofd->data_key, f->ofd->cap, buf, *at, count);
}

ssize_t
gkfs_pwrite(struct gk_file *f, const void *buf, size_t count, int64_t off)
{
	int rc;

	if ((rc = io_check(f, 1, off)) != 0)
		return rc;
	if (!count)
		return 0;
	count = io_cap(count);
	/* As the kernel: nothing at or past the largest offset (EFBIG), a
	 * write reaching past it is cut there. */
	if ((uint64_t)off >= (uint64_t)INT64_MAX)
		return -EFBIG;
	if (count > (uint64_t)INT64_MAX - (uint64_t)off)
		count = (uint64_t)INT64_MAX - (uint64_t)off;
	if (__atomic_load_n(&f->ofd->flags, __ATOMIC_RELAXED) & O_APPEND) {
		/* Linux appends even for pwrite on an O_APPEND descriptor */
		uint64_t at;
		return append_write(f, buf, count, &at);
	}
	return gk_fwd_write_sized(f->ofd->path, f->ofd->data_key, f->ofd->cap, buf, (uint64_t)off, count);
}

ssize_t
gkfs_read(struct gk_file *f, void *buf, size_t count)
{
	int64_t off;
	ssize_t n;
	int rc;

	if ((rc = io_check(f, 0, 0)) != 0)
		return rc;
	count = io_cap(count);
	/* Reserve the range, give back what was not read (if nobody moved
	 * the offset meanwhile): concurrent readers get disjoint ranges. */
	off = gk_ofd_advance(f, (int64_t)count);
	n = gkfs_pread(f, buf, count, off);
	int64_t want = off + (int64_t)count, have = off + (n > 0 ? n : 0);
	if (want != have)
		__atomic_compare_exchange_n(&f->ofd->offset, &want, have, 0,
		                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	return n;
}

ssize_t
gkfs_write(struct gk_file *f, const void *buf, size_t count)
{
	int64_t off;
	ssize_t n;
	int rc;

	if ((rc = io_check(f, 1, 0)) != 0)
		return rc;
	count = io_cap(count);
	if (!count)
		return 0;
	if (__atomic_load_n(&f->ofd->flags, __ATOMIC_RELAXED) & O_APPEND) {
		uint64_t at;
		n = append_write(f, buf, count, &at);
		if (n > 0)
			gk_ofd_set_offset(f, (int64_t)(at + n));
		return n;
	}
	off = gk_ofd_advance(f, (int64_t)count);
	n = gk_fwd_write_sized(f->ofd->path, f->ofd->data_key, f->ofd->cap, buf, (uint64_t)off, count);
	if (n < 0) {
		int64_t want = off + (int64_t)count;
		__atomic_compare_exchange_n(&f->ofd->offset, &want, off, 0,
		                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	}
	return n;
}

int64_t
gkfs_lseek(struct gk_file *f, int64_t off, int whence)
{
	struct gk_record r;
	int64_t base;
	int rc;

	if (f->ofd->is_dir) {
		/* directory positions are entry indices (our d_off values) */
		if (whence != SEEK_SET || off < 0)
			return whence == SEEK_CUR && off == 0 ? (int64_t)f->ofd->dir_pos : -EINVAL;
		f->ofd->dir_pos = (uint64_t)off;
		if (off == 0) {     /* rewinddir: see new entries */
			pthread_mutex_lock(&f->lock);
			f->dents_valid = 0;
			pthread_mutex_unlock(&f->lock);
		}
		return off;
	}
	switch (whence) {
	case SEEK_SET:
		base = 0;
		break;
	case SEEK_CUR:
		base = gk_ofd_offset(f);
		break;
	case SEEK_END:
	case SEEK_DATA:
	case SEEK_HOLE:
		rc = gk_fwd_fstat(f->ofd->path, f->ofd->data_key, &r);
		if (rc)
			return rc;
		if (whence == SEEK_END) {
			base = (int64_t)r.size;
			break;
		}
		/* gkfs keeps no hole map: all data up to the size, one hole at EOF */
		if (off < 0 || (uint64_t)off >= r.size)
			return -ENXIO;
		base = 0;
		if (whence == SEEK_HOLE)
			off = (int64_t)r.size;
		break;
	default:
		return -EINVAL;
	}
	if (base + off < 0)
		return -EINVAL;
	gk_ofd_set_offset(f, base + off);
	return base + off;
}

int
gkfs_fstat(struct gk_file *f, struct gk_record *r)
{
	if (f->ofd->is_dir)
		return gk_fwd_stat(f->ofd->path, r);
	return gk_fwd_fstat(f->ofd->path, f->ofd->data_key, r);
}

int
gkfs_fsync(struct gk_file *f)
{
	/* A directory: no chunks; a key-less fsync flushes the metadata too. */
	return gk_fwd_fsync(f->ofd->is_dir ? NULL : f->ofd->data_key, f->ofd->cap);
}

int
gkfs_fallocate(struct gk_file *f, int mode, int64_t off, int64_t len)
{
	if (off < 0 || len <= 0)
		return -EINVAL;
	if (!writable(f))
		return -EBADF;
	if (f->ofd->is_dir)
		return -EISDIR;
	if (mode == FALLOC_FL_KEEP_SIZE)
		return 0;     /* gkfs reserves no space: nothing to do */
	if (mode != 0)
		return -EOPNOTSUPP;   /* punch hole, collapse, zero range... */
	/* The size grows to cover the range; unwritten bytes read as zeros. */
	return gk_fwd_update_size(f->ofd->path, f->ofd->data_key, f->ofd->cap, (uint64_t)off, (uint64_t)len,
	                          0, NULL);
}

struct linux_dirent64_hdr {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static unsigned char
dtype(uint32_t mode)
{
	switch (mode & GK_S_IFMT) {
	case GK_S_IFDIR: return DT_DIR;
	case GK_S_IFREG: return DT_REG;
	case GK_S_IFLNK: return DT_LNK;
	default: return DT_UNKNOWN;
	}
}

long
gkfs_getdents64(struct gk_file *f, void *buf, size_t count)
{
	char child[GK_PATH_MAX + GK_NAME_MAX + 2];
	const char *dir = f->ofd->path;
	size_t used = 0;
	long rc = 0;

	if (!f->ofd->is_dir)
		return -ENOTDIR;
	pthread_mutex_lock(&f->lock);
	if (!f->dents_valid) {
		if (f->dents)
			gk_dirents_free(f->dents, f->ndents);
		f->dents = NULL;
		f->ndents = 0;
		rc = gk_fwd_list_dir(dir, &f->dents, &f->ndents);
		if (rc) {
			pthread_mutex_unlock(&f->lock);
			return rc;
		}
		f->dents_valid = 1;
	}
	/* index 0 ".", 1 "..", then the daemons' entries */
	for (uint64_t i = f->ofd->dir_pos; i < f->ndents + 2; i++) {
		const char *name = i == 0 ? "." : i == 1 ? ".." : f->dents[i - 2].name;
		size_t nl = strlen(name);
		size_t reclen = (offsetof(struct linux_dirent64_hdr, d_name) + nl + 1 + 7) & ~(size_t)7;
		if (used + reclen > count) {
			if (!used)
				rc = -EINVAL;
			break;
		}
		struct linux_dirent64_hdr *d = (void *)((char *)buf + used);
		if (i < 2) {
			d->d_type = DT_DIR;
			d->d_ino = gk_metadata_hash(dir) >> 1;
		} else {
			d->d_type = dtype(f->dents[i - 2].mode);
			snprintf(child, sizeof(child), "%s/%s", strcmp(dir, "/") ? dir : "", name);
			d->d_ino = gk_metadata_hash(child) >> 1;
		}
		if (!d->d_ino)
			d->d_ino = 1;
		d->d_off = (int64_t)(i + 1);
		d->d_reclen = (unsigned short)reclen;
		memcpy(d->d_name, name, nl + 1);
		memset(d->d_name + nl + 1, 0, reclen - offsetof(struct linux_dirent64_hdr, d_name) - nl - 1);
		used += reclen;
		f->ofd->dir_pos = i + 1;
	}
	pthread_mutex_unlock(&f->lock);
	return rc ? rc : (long)used;
}
