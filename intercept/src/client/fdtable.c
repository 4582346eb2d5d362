/*
 * fdtable.c - the descriptor table (see fdtable.h for the model).
 *
 * The table is an array indexed by descriptor number, mapped on the first
 * gkfs open (a process that never opens a gkfs file has none).  Readers
 * check a slot without a lock; taking a reference and changing slots happen
 * under one short mutex, never held across an RPC.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "libsyscall_intercept_hook_point.h"
#include "fdtable.h"
#include "runtime.h"
#include "gkfs_ops.h"
#include "locks.h"
#include "mmap_shared.h"
#include "log.h"

#define TABLE_SLOTS (1u << 20)   /* descriptor numbers we can track */

static struct gk_file **table;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int n_open;

static int
ensure_table(void)
{
	struct gk_file **none = NULL;

	if (__atomic_load_n(&table, __ATOMIC_ACQUIRE))
		return 0;
	void *p = (void *)syscall_no_intercept(SYS_mmap, NULL,
	        TABLE_SLOTS * sizeof(*table), PROT_READ | PROT_WRITE,
	        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if ((long)p < 0 && (long)p > -4096)
		return (int)(long)p;
	/* Threads making their first opens at once each map one: the first
	 * installed stays, the others are unmapped. A plain store let a later
	 * table replace one that already held another thread's descriptor,
	 * whose calls then went to the kernel (its placeholder's bytes read
	 * as the file's). */
	if (!__atomic_compare_exchange_n(&table, &none, (struct gk_file **)p, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		syscall_no_intercept(SYS_munmap, p, TABLE_SLOTS * sizeof(*table));
	return 0;
}

int
gk_fd_is_gkfs(int fd)
{
	struct gk_file **t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	return t && fd >= 0 && (unsigned)fd < TABLE_SLOTS &&
	       __atomic_load_n(&t[fd], __ATOMIC_ACQUIRE) != NULL;
}

int
gk_fd_count(void)
{
	return __atomic_load_n(&n_open, __ATOMIC_RELAXED);
}

struct gk_file *
gk_fd_get(int fd)
{
	struct gk_file *f;

	if (!gk_fd_is_gkfs(fd))
		return NULL;
	pthread_mutex_lock(&table_lock);
	f = table[fd];
	if (f)
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&table_lock);
	return f;
}

void
gk_file_put(struct gk_file *f)
{
	if (!f || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	syscall_no_intercept(SYS_munmap, f->ofd, GK_OFD_MAP_SIZE);
	if (f->dents)
		gk_dirents_free(f->dents, f->ndents);
	free(f);
}

/* count: the slot is a descriptor new to the open file description (not
 * one inherited across exec, which was counted before). */
static void
set_slot_counted(int fd, struct gk_file *f, int count)
{
	struct gk_file *old;

	pthread_mutex_lock(&table_lock);
	old = table[fd];
	__atomic_store_n(&table[fd], f, __ATOMIC_RELEASE);
	/* descriptor calls on it reach the hook (runtime's fast path) */
	gk_want_fd_mark(fd, f != NULL);
	if (f) {
		gk_want_wake(SYS_exit_group);   /* hook.c: quiet until now */
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	}
	if (f && count)
		gk_ofd_users_add(f->ofd, +1);
	n_open += (f != NULL) - (old != NULL);
	pthread_mutex_unlock(&table_lock);
	if (old) {
		/* a close: POSIX locks of this process on the file go; OFD and
		 * flock locks when the description's last descriptor goes */
		int last = gk_ofd_users_add(old->ofd, -1);
		gk_mmap_on_close(old);       /* shared mappings: write back */
		gk_locks_on_close(old, last);
		if (last)
			gkfs_last_close(old);     /* an unlinked file's data may go */
	}
	gk_file_put(old);
}

static void
set_slot(int fd, struct gk_file *f)
{
	set_slot_counted(fd, f, 1);
}

static struct gk_file *
new_file(struct gk_ofd *ofd, uint64_t ino)
{
	struct gk_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->ofd = ofd;
	f->ino = ino;
	pthread_mutex_init(&f->lock, NULL);
	return f;
}

static struct gk_ofd *
map_ofd(int fd)
{
	long p = syscall_no_intercept(SYS_mmap, NULL, GK_OFD_MAP_SIZE,
	                              PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return p < 0 && p > -4096 ? NULL : (struct gk_ofd *)p;
}

int
gk_file_open(const char *path, uint32_t flags, int is_dir, const char *data_key,
             const char *cap, uint64_t hold_owner)
{
	struct stat st;
	struct gk_ofd *ofd;
	struct gk_file *f;
	long fd;
	int rc = ensure_table();

	if (rc)
		return rc;
	fd = syscall_no_intercept(SYS_memfd_create, "gkfs",
	                          (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (fd < 0)
		return (int)fd;
	if ((unsigned long)fd >= TABLE_SLOTS) {
		syscall_no_intercept(SYS_close, fd);
		return -EMFILE;
	}
	if ((rc = (int)syscall_no_intercept(SYS_ftruncate, fd, GK_OFD_MAP_SIZE)) ||
	    (rc = (int)syscall_no_intercept(SYS_fstat, fd, &st)) ||
	    !(ofd = map_ofd((int)fd))) {
		syscall_no_intercept(SYS_close, fd);
		return rc ? rc : -ENOMEM;
	}
	ofd->offset = 0;
	ofd->flags = flags & ~(uint32_t)(O_CLOEXEC | O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
	ofd->is_dir = is_dir;
	ofd->dir_pos = 0;
	ofd->lock_id = 0;
	memset(ofd->users, 0, sizeof(ofd->users));
	ofd->users_lock = 0;
	ofd->users_overflow = 0;
	ofd->has_locks = 0;
	ofd->hold_owner = hold_owner;
	snprintf(ofd->data_key, sizeof(ofd->data_key), "%s", data_key ? data_key : "");
	snprintf(ofd->cap, sizeof(ofd->cap), "%s", cap ? cap : "");
	snprintf(ofd->path, sizeof(ofd->path), "%s", path);
	__atomic_store_n(&ofd->magic, GK_OFD_MAGIC, __ATOMIC_RELEASE);
	f = new_file(ofd, st.st_ino);
	if (!f) {
		syscall_no_intercept(SYS_munmap, ofd, GK_OFD_MAP_SIZE);
		syscall_no_intercept(SYS_close, fd);
		return -ENOMEM;
	}
	set_slot((int)fd, f);
	GKC_LOG(GKC_DEBUG, "fd %ld = %s (flags %#x)", fd, path, flags);
	return (int)fd;
}

void
gk_fd_install(int newfd, struct gk_file *f)
{
	if (newfd < 0 || (unsigned)newfd >= TABLE_SLOTS || ensure_table())
		return;
	set_slot(newfd, f);
}

void
gk_fd_forget(int fd)
{
	if (gk_fd_is_gkfs(fd))
		set_slot(fd, NULL);
}

int
gk_fd_each(int (*fn)(int, struct gk_file *, void *), void *arg)
{
	struct gk_file **t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	int seen = 0, total = gk_fd_count();

	if (!t)
		return 0;
	for (unsigned fd = 0; fd < TABLE_SLOTS && seen < total; fd++) {
		struct gk_file *f = gk_fd_get((int)fd);
		if (!f)
			continue;
		seen++;
		int r = fn((int)fd, f, arg);
		gk_file_put(f);
		if (r)
			return r;
	}
	return 0;
}

struct find_ino { uint64_t ino; struct gk_file *found; };

static int
match_ino(int fd, struct gk_file *f, void *arg)
{
	struct find_ino *q = arg;
	if (f->ino == q->ino) {
		q->found = f;
		__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
		return 1;
	}
	return 0;
}

int
gk_fd_adopt(int fd)
{
	struct stat st;
	struct find_ino q = {0};
	struct gk_ofd *ofd;
	struct gk_file *f;
	int rc = ensure_table();

	if (rc)
		return rc;
	if (fd < 0 || (unsigned)fd >= TABLE_SLOTS || gk_fd_is_gkfs(fd))
		return -EBADF;
	if (syscall_no_intercept(SYS_fstat, fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != GK_OFD_MAP_SIZE)
		return -EBADF;
	q.ino = st.st_ino;
	gk_fd_each(match_ino, &q);
	if (q.found) {              /* a duplicate of one adopted already */
		set_slot_counted(fd, q.found, 0);
		gk_file_put(q.found);
		return 0;
	}
	if (!(ofd = map_ofd(fd)))
		return -EBADF;
	if (__atomic_load_n(&ofd->magic, __ATOMIC_ACQUIRE) != GK_OFD_MAGIC) {
		syscall_no_intercept(SYS_munmap, ofd, GK_OFD_MAP_SIZE);
		return -EBADF;
	}
	if (!(f = new_file(ofd, st.st_ino))) {
		syscall_no_intercept(SYS_munmap, ofd, GK_OFD_MAP_SIZE);
		return -ENOMEM;
	}
	set_slot_counted(fd, f, 0);
	GKC_LOG(GKC_DEBUG, "fd %d inherited: %s", fd, ofd->path);
	return 0;
}

int64_t
gk_ofd_offset(struct gk_file *f)
{
	return __atomic_load_n(&f->ofd->offset, __ATOMIC_ACQUIRE);
}

void
gk_ofd_set_offset(struct gk_file *f, int64_t off)
{
	__atomic_store_n(&f->ofd->offset, off, __ATOMIC_RELEASE);
}

int64_t
gk_ofd_advance(struct gk_file *f, int64_t n)
{
	return __atomic_fetch_add(&f->ofd->offset, n, __ATOMIC_ACQ_REL);
}

void
gk_fdtable_after_fork(void)
{
	/* Only this thread exists in the child: a lock held by another thread
	 * at the fork would never be released. */
	pthread_mutex_init(&table_lock, NULL);
	/* every descriptor was duplicated into this process */
	struct gk_file **t = table;
	for (unsigned fd = 0, seen = 0; t && fd < TABLE_SLOTS && seen < (unsigned)n_open; fd++)
		if (t[fd]) {
			seen++;
			gk_ofd_users_add(t[fd]->ofd, +1);
		}
	gk_locks_after_fork();
}

static int
pid_alive(int32_t pid)
{
	return syscall_no_intercept(SYS_kill, pid, 0) != -ESRCH;
}

int
gk_ofd_users_add(struct gk_ofd *ofd, int delta)
{
	int32_t me = (int32_t)syscall_no_intercept(SYS_getpid);
	int left = 0, mine = -1, free_slot = -1;

	/* bounded: a holder killed inside this section must not stop others */
	for (long spins = 0; __atomic_exchange_n(&ofd->users_lock, 1, __ATOMIC_ACQUIRE) &&
	     spins < 50000000L; spins++)
		;
	for (int i = 0; i < GK_OFD_USERS; i++) {
		if (ofd->users[i].pid == me)
			mine = i;
		else if (ofd->users[i].ndesc > 0 && !pid_alive(ofd->users[i].pid))
			ofd->users[i].ndesc = 0;     /* died without closing */
		if (ofd->users[i].ndesc <= 0 && ofd->users[i].pid != me && free_slot < 0)
			free_slot = i;
	}
	if (mine < 0 && delta > 0) {
		if (free_slot >= 0) {
			mine = free_slot;
			ofd->users[mine].pid = me;
			ofd->users[mine].ndesc = 0;
		} else {
			ofd->users_overflow = 1;
		}
	}
	if (mine >= 0) {
		ofd->users[mine].ndesc += delta;
		if (ofd->users[mine].ndesc < 0)
			ofd->users[mine].ndesc = 0;
	}
	for (int i = 0; i < GK_OFD_USERS; i++)
		left += ofd->users[i].ndesc > 0;
	__atomic_store_n(&ofd->users_lock, 0, __ATOMIC_RELEASE);
	return delta < 0 && !left && !ofd->users_overflow;
}
