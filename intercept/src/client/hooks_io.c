/*
 * hooks_io.c - data calls on gkfs descriptors: read/write and their
 * positional and vector forms, lseek, fsync, ftruncate, fallocate,
 * fadvise64, and the in-kernel copy calls (answered so that programs fall
 * back to read/write).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "fdtable.h"
#include "gkfs_ops.h"
#include "hooks.h"

#define GET_FILE(fdarg) \
	struct gk_file *f = gk_fd_get((int)(fdarg)); \
	if (!f) \
		return PASS

int
hook_read(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_read(f, (void *)a[1], (size_t)a[2]);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_write(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_write(f, (const void *)a[1], (size_t)a[2]);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_pread64(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_pread(f, (void *)a[1], (size_t)a[2], (int64_t)a[3]);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_pwrite64(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_pwrite(f, (const void *)a[1], (size_t)a[2], (int64_t)a[3]);
	gk_file_put(f);
	return HANDLED(n);
}

/* Vector I/O through one bounce buffer: one gkfs request for the lot. */
static long
vec_io(struct gk_file *f, const struct iovec *iov, long cnt, int64_t off, int is_write)
{
	size_t total = 0, done = 0;
	long n;
	char *buf;

	if (cnt < 0 || cnt > 1024)
		return -EINVAL;
	for (long i = 0; i < cnt; i++) {
		if (iov[i].iov_len > 0x7ffff000 - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	if (!total)
		return 0;
	if (!(buf = malloc(total)))
		return -ENOMEM;
	if (is_write) {
		for (long i = 0; i < cnt; i++) {
			memcpy(buf + done, iov[i].iov_base, iov[i].iov_len);
			done += iov[i].iov_len;
		}
		n = off < 0 ? gkfs_write(f, buf, total) : gkfs_pwrite(f, buf, total, off);
	} else {
		n = off < 0 ? gkfs_read(f, buf, total) : gkfs_pread(f, buf, total, off);
		for (long i = 0; n > 0 && i < cnt && done < (size_t)n; i++) {
			size_t k = iov[i].iov_len < (size_t)n - done ? iov[i].iov_len : (size_t)n - done;
			memcpy(iov[i].iov_base, buf + done, k);
			done += k;
		}
	}
	free(buf);
	return n;
}

int
hook_readv(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = vec_io(f, (const struct iovec *)a[1], a[2], -1, 0);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_writev(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = vec_io(f, (const struct iovec *)a[1], a[2], -1, 1);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_preadv(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = a[3] < 0 ? -EINVAL : vec_io(f, (const struct iovec *)a[1], a[2], a[3], 0);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_pwritev(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = a[3] < 0 ? -EINVAL : vec_io(f, (const struct iovec *)a[1], a[2], a[3], 1);
	gk_file_put(f);
	return HANDLED(n);
}

/* preadv2/pwritev2: offset -1 = the current position; RWF_* flags are
 * hints gkfs has no use for, except RWF_NOWAIT (which it cannot honour). */
int
hook_preadv2(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = (a[5] & RWF_NOWAIT) ? -EOPNOTSUPP :
	         a[3] < -1 ? -EINVAL : vec_io(f, (const struct iovec *)a[1], a[2], a[3], 0);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_pwritev2(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = (a[5] & RWF_NOWAIT) ? -EOPNOTSUPP :
	         a[3] < -1 ? -EINVAL : vec_io(f, (const struct iovec *)a[1], a[2], a[3], 1);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_lseek(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_lseek(f, (int64_t)a[1], (int)a[2]);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_fsync(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_fsync(f);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_ftruncate(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_ftruncate(f, (int64_t)a[1]);
	gk_file_put(f);
	return HANDLED(n);
}

int
hook_fallocate(const long *a, long *res)
{
	GET_FILE(a[0]);
	long n = gkfs_fallocate(f, (int)a[1], (int64_t)a[2], (int64_t)a[3]);
	gk_file_put(f);
	return HANDLED(n);
}

/* Advice (fadvise64, readahead): accepted, gkfs has no page cache. */
int
hook_fadvise64(const long *a, long *res)
{
	GET_FILE(a[0]);
	gk_file_put(f);
	return HANDLED(0);
}

/* In-kernel copies cannot see gkfs data.  EINVAL at the first call makes
 * sendfile users (Python's shutil) fall back to read/write. */
int
hook_sendfile(const long *a, long *res)
{
	if (!gk_fd_is_gkfs((int)a[0]) && !gk_fd_is_gkfs((int)a[1]))
		return PASS;
	return HANDLED(-EINVAL);
}

/* EXDEV: "not the same file system", the answer after which coreutils cp
 * and Python fall back to read/write. */
int
hook_copy_file_range(const long *a, long *res)
{
	if (!gk_fd_is_gkfs((int)a[0]) && !gk_fd_is_gkfs((int)a[2]))
		return PASS;
	return HANDLED(-EXDEV);
}

int
hook_splice(const long *a, long *res)
{
	if (!gk_fd_is_gkfs((int)a[0]) && !gk_fd_is_gkfs((int)a[2]))
		return PASS;
	return HANDLED(-EINVAL);
}
