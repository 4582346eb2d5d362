/*
 * forward.h - one function per protocol operation (docs/protocol.md 4.3),
 * placing each request on the right daemon(s) (4.2).  Paths are canonical
 * gkfs paths.  Return 0 or -errno.
 */
#ifndef GKFS_CLIENT_FORWARD_H
#define GKFS_CLIENT_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dcache.h"
#include "proto.h"

int gk_fwd_stat(const char *path, struct gk_record *r);
/* stat of an open file: the record at path if it still has data_key, else
 * the daemon's orphan of that key (unlinked while open), else -ENOENT. */
int gk_fwd_fstat(const char *path, const char *data_key, struct gk_record *r);
/* stat that also registers an open of the file by `hold` (an owner id):
 * an unlink keeps its data until gk_fwd_release (docs/protocol.md 4.6). */
int gk_fwd_stat_hold(const char *path, const char *hold, struct gk_record *r);
/* wait 0: sent without waiting for the reply (close must not cost a round
 * trip); the daemon then hands a freed orphan to a later reply (4.6). */
int gk_fwd_release(const char *path, const char *data_key, const char *hold, int wait);
/* Stat of the parent and create, in one round trip (the daemon does not
 * check the parent).  *created tells whether the record is new. */
int gk_fwd_create(const char *path, uint32_t mode, int exclusive,
                  struct gk_record *r, int *created);
int gk_fwd_create_hold(const char *path, uint32_t mode, int exclusive, const char *hold,
                       struct gk_record *r, int *created);
/* rmdir: -1 any type, 0 not a directory, 1 a directory. data_key may be NULL */
int gk_fwd_remove(const char *path, int rmdir, const char *data_key,
                  struct gk_record *removed);
/* data_key (may be NULL): the open file's, as gk_fwd_fstat; cap (may be
 * NULL or ""): its data capability (docs/protocol.md 4.7) */
int gk_fwd_update_size(const char *path, const char *data_key, const char *cap,
                       uint64_t offset, uint64_t count, int append, uint64_t *write_at);
int gk_fwd_truncate(const char *path, const char *data_key, const char *cap, uint64_t size,
                    struct gk_record *r);
/* 1 if some daemon holds a child of path, 0 if none, -errno. */
int gk_fwd_has_children(const char *path);

struct gk_dirent {
	char *name;
	uint32_t mode;
	uint64_t size;
	struct gk_attr *attr;   /* private to gk_fwd_list_dir (NULL when returned) */
	unsigned member;        /* the daemon that listed it */
};
/* Every child of path, merged from all daemons, sorted by name bytes.
 * *out is malloc'd (names too): free with gk_dirents_free.  With the stat
 * cache on, the entries' records go into it (dcache.h). */
int gk_fwd_list_dir(const char *path, struct gk_dirent **out, size_t *n);
void gk_dirents_free(struct gk_dirent *e, size_t n);

ssize_t gk_fwd_write(const char *data_key, const char *cap, const void *buf,
                     uint64_t offset, uint64_t count);
/* A write and its size update (update_size after the data): folded into
 * the one write_chunks request when that goes to the path's metadata owner,
 * else a second RPC.  Returns count or -errno. */
ssize_t gk_fwd_write_sized(const char *path, const char *data_key, const char *cap,
                           const void *buf, uint64_t offset, uint64_t count);
/* Reads [offset, offset+count) of a file of size file_size (count already
 * clamped to EOF); holes read as zeros. */
ssize_t gk_fwd_read(const char *data_key, const char *cap, void *buf,
                    uint64_t offset, uint64_t count, uint64_t file_size);
/* A read whose size lookup is folded into read_chunks (the daemon reads
 * the size first and clips): only when every chunk of [offset,
 * offset+count) lives on the path's metadata owner and the read fits one
 * request.  *folded = 1: done, returns the bytes read (EOF-clipped) or
 * -errno; *folded = 0: nothing done (returns 0 or -errno): fstat + gk_fwd_read. */
ssize_t gk_fwd_read_sized(const char *path, const char *data_key, const char *cap, void *buf,
                          uint64_t offset, uint64_t count, int *folded);
int gk_fwd_remove_chunks(const char *data_key, const char *cap);
int gk_fwd_truncate_chunks(const char *data_key, const char *cap, uint64_t size);
int gk_fwd_fsync(const char *data_key, const char *cap);

struct gk_fsstat {
	uint64_t total_bytes, free_bytes, avail_bytes, files, name_max, chunk_size;
};
int gk_fwd_statfs(struct gk_fsstat *out);

/* replaced->mode == 0 when nothing was replaced. */
int gk_fwd_rename(const char *old, const char *new_, struct gk_record *replaced);
int gk_fwd_insert(const char *path, const char *from, const struct gk_record *rec, int replace,
                  struct gk_record *replaced);
int gk_fwd_symlink(const char *path, const char *target);
int gk_fwd_readlink(const char *path, char *buf, size_t size);
/* UINT64_MAX = leave unchanged */
int gk_fwd_utimens(const char *path, uint64_t atime_ns, uint64_t mtime_ns);
/* both times "now" by the daemon's clock: allowed to whoever may write */
int gk_fwd_utimens_now(const char *path);
/* chmod/chown in place on the metadata owner; -1 = unchanged. */
int gk_fwd_setattr(const char *path, long mode, long uid, long gid);

/* Locks (docs/protocol.md 4.3 lock, 4.5).  type: 0 F_RDLCK, 1 F_WRLCK,
 * 2 F_UNLCK; len 0 = to infinity; space "posix" or "flock".
 * 0 granted (or, with test, no conflict), 1 conflict (filled in), -errno. */
struct gk_lock_conflict {
	int found, type;
	uint64_t start, len;
	int64_t pid;
	char owner[40];
};
int gk_fwd_lock(const char *data_key, const char *cap, const char *owner, const char *space,
                int type, uint64_t start, uint64_t len, int test,
                struct gk_lock_conflict *conflict);
int gk_fwd_unlock_owner(const char *data_key, const char *owner);
/* Sets (on) or drops the fences of a directory rename on one daemon, on
 * the lock session (a fence goes with its connection). */
int gk_fwd_fence(unsigned target, const char *token, const char *old, const char *new_,
                 const char *old_parent, const char *new_parent, int on);

#endif
