/*
 * locks.c - advisory locks on gkfs files, held by the lock owner daemon of
 * each file (the owner of chunk 0 of its data key).
 *
 * Owners (docs/protocol.md 4.5): "p<id>" for this process's fcntl
 * F_SETLK/F_SETLKW locks (id: gk_rpc_process_owner, new in a forked child,
 * so a child never shares its parent's locks), "o<id>" for the open file
 * description's OFD and flock locks (id in the description's shared page,
 * so duplicates, forked children and exec'd images share it).
 *
 * Release, as the kernel does: a process's record locks on a file go when
 * it closes ANY descriptor of that file; OFD and flock locks when the last
 * descriptor of the description closes (fdtable.c counts them); everything
 * a process took goes when it dies or execs (the daemons drop the locks of
 * a closed connection; the lock session's sockets are close-on-exec).
 *
 * Waiting (F_SETLKW, flock without LOCK_NB) is a retry loop here, never a
 * blocked daemon: it sleeps 1 ms doubling to 50 ms between attempts and
 * returns EINTR when a signal handler ran during a sleep.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>

#include "libsyscall_intercept_hook_point.h"
#include "fdtable.h"
#include "forward.h"
#include "gkfs_ops.h"
#include "locks.h"
#include "log.h"
#include "proto.h"
#include "rpc.h"

#define LK_RD 0
#define LK_WR 1
#define LK_UN 2

/* Files this process has taken record locks on (so close() knows when it
 * must tell the daemon); past the table's size, every close tells it. */
#define MAX_TRACKED 256
static pthread_mutex_t tracked_lock = PTHREAD_MUTEX_INITIALIZER;
static char tracked[MAX_TRACKED][80];
static int n_tracked, tracked_overflow;

static void
track_key(const char *key)
{
	pthread_mutex_lock(&tracked_lock);
	int i;
	for (i = 0; i < n_tracked && strcmp(tracked[i], key); i++)
		;
	if (i == n_tracked) {
		if (n_tracked < MAX_TRACKED)
			snprintf(tracked[n_tracked++], sizeof(tracked[0]), "%s", key);
		else
			tracked_overflow = 1;
	}
	pthread_mutex_unlock(&tracked_lock);
}

/* Whether the process may hold record locks on key; forgets it. */
static int
untrack_key(const char *key)
{
	int found = 0;

	pthread_mutex_lock(&tracked_lock);
	for (int i = 0; i < n_tracked; i++)
		if (!strcmp(tracked[i], key)) {
			memcpy(tracked[i], tracked[--n_tracked], sizeof(tracked[0]));
			found = 1;
			break;
		}
	found |= tracked_overflow;
	pthread_mutex_unlock(&tracked_lock);
	return found;
}

void
gk_locks_after_fork(void)
{
	pthread_mutex_init(&tracked_lock, NULL);
	n_tracked = 0;
	tracked_overflow = 0;
}

static void
process_owner(char *buf, size_t n)
{
	snprintf(buf, n, "p%016llx", (unsigned long long)gk_rpc_process_owner());
}

static void
ofd_owner(struct gk_file *f, char *buf, size_t n)
{
	uint64_t id = __atomic_load_n(&f->ofd->lock_id, __ATOMIC_ACQUIRE);

	while (!id) {
		uint64_t v = 0, zero = 0;
		if (syscall_no_intercept(SYS_getrandom, &v, sizeof(v), 0) != (long)sizeof(v) || !v)
			v = (uint64_t)(uintptr_t)f ^ ((uint64_t)syscall_no_intercept(SYS_getpid) << 40) ^ 1;
		if (__atomic_compare_exchange_n(&f->ofd->lock_id, &zero, v, 0,
		                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			id = v;
		else
			id = zero;
	}
	snprintf(buf, n, "o%016llx", (unsigned long long)id);
}

/* Sleeps before the next attempt of a blocking lock with the program's
 * signal mask (every other moment of the wait runs with signals blocked,
 * so one arriving during a request is delivered here, never lost in the
 * transport's poll); -EINTR when a handler ran, as the kernel's F_SETLKW
 * and flock return. */
static int
wait_a_little(long *delay_ns, const uint64_t *program_mask)
{
	struct timespec ts = {0, *delay_ns};
	long rc = syscall_no_intercept(SYS_ppoll, NULL, 0, &ts, program_mask, 8);

	if (*delay_ns < 50000000L)
		*delay_ns *= 2;
	return rc == -EINTR ? -EINTR : 0;
}

/* One lock request, retried while it conflicts when wait is set.
 * 0 granted, 1 conflict (no wait), -errno. */
static int
lock_loop(const char *key, const char *cap, const char *owner, const char *space, int type,
          uint64_t start, uint64_t len, int wait)
{
	uint64_t all = ~0ULL, program_mask = 0;
	long delay = 1000000L;
	int rc;

	if (!wait)
		return gk_fwd_lock(key, cap, owner, space, type, start, len, 0, NULL);
	syscall_no_intercept(SYS_rt_sigprocmask, SIG_BLOCK, &all, &program_mask, 8);
	for (;;) {
		rc = gk_fwd_lock(key, cap, owner, space, type, start, len, 0, NULL);
		if (rc <= 0 || (rc = wait_a_little(&delay, &program_mask)) != 0)
			break;
	}
	syscall_no_intercept(SYS_rt_sigprocmask, SIG_SETMASK, &program_mask, NULL, 8);
	return rc;
}

static int
is_readable(struct gk_file *f)
{
	int acc = f->ofd->flags & O_ACCMODE;
	return acc == O_RDONLY || acc == O_RDWR;
}

static int
is_writable(struct gk_file *f)
{
	int acc = f->ofd->flags & O_ACCMODE;
	return acc == O_WRONLY || acc == O_RDWR;
}

/* struct flock -> [start, start+len) (len 0: to infinity), as the kernel's
 * flock_to_posix_lock. */
static int
flock_range(struct gk_file *f, const struct flock *fl, uint64_t *start, uint64_t *len)
{
	int64_t base, s, l = fl->l_len;
	struct gk_record r;

	switch (fl->l_whence) {
	case SEEK_SET:
		base = 0;
		break;
	case SEEK_CUR:
		base = gk_ofd_offset(f);
		break;
	case SEEK_END: {
		int rc = gkfs_fstat(f, &r);
		if (rc)
			return rc;
		base = (int64_t)r.size;
		break;
	}
	default:
		return -EINVAL;
	}
	if (__builtin_add_overflow(base, (int64_t)fl->l_start, &s))
		return -EOVERFLOW;
	if (l < 0) {
		if (s + l < 0)
			return -EINVAL;
		s += l;
		l = -l;
	}
	if (s < 0)
		return -EINVAL;
	if (l > 0 && s - 1 > INT64_MAX - l)
		return -EOVERFLOW;
	*start = (uint64_t)s;
	*len = (uint64_t)l;
	return 0;
}

int
gkfs_fcntl_lock(struct gk_file *f, int cmd, struct flock *fl)
{
	char owner[40];
	uint64_t start, len;
	int ofd = cmd == F_OFD_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW;
	int type, rc;

	if (!fl)
		return -EFAULT;
	switch (fl->l_type) {
	case F_RDLCK: type = LK_RD; break;
	case F_WRLCK: type = LK_WR; break;
	case F_UNLCK: type = LK_UN; break;
	default: return -EINVAL;
	}
	if (ofd && fl->l_pid != 0)
		return -EINVAL;
	if ((rc = flock_range(f, fl, &start, &len)) != 0)
		return rc;
	if (ofd)
		ofd_owner(f, owner, sizeof(owner));
	else
		process_owner(owner, sizeof(owner));
	if (cmd == F_GETLK || cmd == F_OFD_GETLK) {
		struct gk_lock_conflict c;
		if (type == LK_UN)
			return -EINVAL;
		rc = gk_fwd_lock(f->ofd->data_key, f->ofd->cap, owner, "posix", type, start, len, 1, &c);
		if (rc < 0)
			return rc;
		if (!c.found) {
			fl->l_type = F_UNLCK;
			return 0;
		}
		fl->l_type = c.type == LK_RD ? F_RDLCK : F_WRLCK;
		fl->l_whence = SEEK_SET;
		fl->l_start = (off_t)c.start;
		fl->l_len = (off_t)c.len;
		fl->l_pid = c.owner[0] == 'o' ? -1 : (pid_t)c.pid;
		return 0;
	}
	if ((type == LK_RD && !is_readable(f)) || (type == LK_WR && !is_writable(f)))
		return -EBADF;
	rc = lock_loop(f->ofd->data_key, f->ofd->cap, owner, "posix", type, start, len,
	               cmd == F_SETLKW || cmd == F_OFD_SETLKW);
	if (rc == 1)
		rc = -EAGAIN;
	if (rc == 0 && type != LK_UN) {
		if (ofd)
			__atomic_store_n(&f->ofd->has_locks, 1, __ATOMIC_RELEASE);
		else
			track_key(f->ofd->data_key);
	}
	GKC_LOG(GKC_DEBUG, "fcntl lock %s cmd %d type %d [%llu +%llu] -> %d", f->ofd->path,
	        cmd, type, (unsigned long long)start, (unsigned long long)len, rc);
	return rc;
}

int
gkfs_flock(struct gk_file *f, int op)
{
	char owner[40];
	int type, rc;

	switch (op & ~LOCK_NB) {
	case LOCK_SH: type = LK_RD; break;
	case LOCK_EX: type = LK_WR; break;
	case LOCK_UN: type = LK_UN; break;
	default: return -EINVAL;
	}
	ofd_owner(f, owner, sizeof(owner));
	rc = lock_loop(f->ofd->data_key, f->ofd->cap, owner, "flock", type, 0, 0, !(op & LOCK_NB));
	if (rc == 1)
		rc = -EWOULDBLOCK;
	if (rc == 0 && type != LK_UN)
		__atomic_store_n(&f->ofd->has_locks, 1, __ATOMIC_RELEASE);
	GKC_LOG(GKC_DEBUG, "flock %s op %d -> %d", f->ofd->path, op, rc);
	return rc;
}

void
gk_locks_at_exit(void)
{
	char owner[40], key[80];

	/* The daemons would notice the closed connection within a probe
	 * interval; a process exiting normally lets go at once, as the kernel
	 * does at exit.  (OFD/flock locks may be shared with a forked child:
	 * those are left to the connection probe.)  No lock held (most
	 * processes): no mutex taken either, one block less to translate
	 * per exit under an emulator. */
	if (!__atomic_load_n(&n_tracked, __ATOMIC_RELAXED))
		return;
	for (;;) {
		pthread_mutex_lock(&tracked_lock);
		int have = n_tracked > 0;
		if (have)
			memcpy(key, tracked[--n_tracked], sizeof(key));
		pthread_mutex_unlock(&tracked_lock);
		if (!have)
			break;
		process_owner(owner, sizeof(owner));
		gk_fwd_unlock_owner(key, owner);
	}
}

void
gk_locks_on_close(struct gk_file *f, int last)
{
	char owner[40];

	if (!f->ofd->data_key[0])
		return;
	GKC_LOG(GKC_DEBUG, "close of %s: last %d, OFD locks %u", f->ofd->path,
	        last, f->ofd->has_locks);
	if (untrack_key(f->ofd->data_key)) {
		process_owner(owner, sizeof(owner));
		gk_fwd_unlock_owner(f->ofd->data_key, owner);
	}
	if (last && __atomic_load_n(&f->ofd->has_locks, __ATOMIC_ACQUIRE)) {
		ofd_owner(f, owner, sizeof(owner));
		gk_fwd_unlock_owner(f->ofd->data_key, owner);
	}
}
