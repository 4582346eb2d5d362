/*
 * gkfs_ops.h - gkfs_<op>: POSIX semantics on top of forward_<rpc>.
 * Paths are canonical gkfs paths (paths.c resolved them); results are
 * kernel-style: >= 0, or -errno.
 *
 * Symlinks are followed in every component (the last one as the call
 * says), at most GK_MAX_SYMLINK_HOPS in all (ELOOP), as the kernel does.
 * The full path is asked first; only when nothing is there are the
 * ancestors asked (gkfs_through_links), so a path without links costs
 * nothing more.  A link whose target leads out of gkfs yields GK_REDIRECT
 * with the absolute kernel path in `redirect` (the hook then performs the
 * call on the kernel with that path).
 */
#ifndef GKFS_CLIENT_GKFS_OPS_H
#define GKFS_CLIENT_GKFS_OPS_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <time.h>

#include "fdtable.h"
#include "proto.h"

#define GK_REDIRECT 0x7fff0000
#define GK_RETRY 0x7fff0001
#define GK_MAX_SYMLINK_HOPS 40

int gkfs_open(const char *path, int flags, mode_t mode, char *redirect);
/* stat with symlink following (follow != 0) in the last component;
 * *final gets the path finally stat'ed (may be NULL). */
int gkfs_record(const char *path, int follow, struct gk_record *r,
                char *final_path, char *redirect);
/* For a path whose record is missing, decided by its nearest existing
 * ancestor (a stat per ancestor up to it, so only ever on that error
 * path): a symlink gives GK_RETRY with `out` = the path with that ancestor
 * replaced by the link's target (*hops counts links followed: ELOOP past
 * 40), or GK_REDIRECT when that leads out of gkfs; a directory -ENOENT; a
 * file -ENOTDIR ("file/x", as the kernel). */
int gkfs_through_links(const char *path, char *out, char *redirect, int *hops);
/* The error for a call that cannot succeed on a path spelled as a directory
 * ("x/") and never acts on a directory (unlink, truncate): -EISDIR,
 * -ENOTDIR or the missing-path error.  Nothing is changed. */
int gkfs_dir_only_error(const char *path);
/* rename of a directory with entries (tree_move.c): old and new canonical,
 * checked by gkfs_rename; new_exists: new is an empty directory. */
int gkfs_move_tree(const char *old, const char *new_, int new_exists);
void gkfs_fill_stat(const struct gk_record *r, const char *path, struct stat *st);
void gkfs_fill_statx(const struct gk_record *r, const char *path, void *statx_buf);
/* must_dir: the path was spelled "x/" (ENOTDIR unless a directory). */
int gkfs_access(const char *path, int mode, int flags, int must_dir, char *redirect);

/* The open file description's last descriptor closed (fdtable.c): its
 * hold on the file is released (an unlinked file's data may go). */
void gkfs_last_close(struct gk_file *f);
/* A file this process removed (or renamed over) while open somewhere. */
void gk_orphan_note(const char *data_key);
int gk_orphan_forget(const char *data_key);   /* 1: it is one of them */

ssize_t gkfs_pread(struct gk_file *f, void *buf, size_t count, int64_t off);
ssize_t gkfs_pwrite(struct gk_file *f, const void *buf, size_t count, int64_t off);
ssize_t gkfs_read(struct gk_file *f, void *buf, size_t count);
ssize_t gkfs_write(struct gk_file *f, const void *buf, size_t count);
int64_t gkfs_lseek(struct gk_file *f, int64_t off, int whence);
int gkfs_fstat(struct gk_file *f, struct gk_record *r);
int gkfs_ftruncate(struct gk_file *f, int64_t len);
int gkfs_fsync(struct gk_file *f);
int gkfs_fallocate(struct gk_file *f, int mode, int64_t off, int64_t len);
long gkfs_getdents64(struct gk_file *f, void *buf, size_t count);

int gkfs_mkdir(const char *path, mode_t mode, char *redirect);
int gkfs_unlink(const char *path, char *redirect);
int gkfs_rmdir(const char *path, char *redirect);
int gkfs_rename(const char *old, const char *new_, unsigned flags);
int gkfs_truncate(const char *path, int64_t len);
int gkfs_symlink(const char *target, const char *linkpath, char *redirect);
long gkfs_readlink(const char *path, char *buf, size_t size, char *redirect);
int gkfs_utimens(const char *path, const struct timespec *times, int follow);
int gkfs_chmod(const char *path, mode_t mode, int follow);
int gkfs_chown(const char *path, long uid, long gid, int follow);
int gkfs_statfs(struct statfs *st);

/* The record's inode number (same rule as gkfs_client.client.stat_result). */
uint64_t gkfs_ino(const struct gk_record *r, const char *path);

#endif
