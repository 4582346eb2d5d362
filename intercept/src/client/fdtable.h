/*
 * fdtable.h - gkfs descriptors.
 *
 * Every gkfs descriptor is a real kernel descriptor: a small memfd (the
 * "placeholder") whose one shared page holds the open file description
 * (offset, status flags, path, data key).  So:
 *  - the kernel never hands out a gkfs descriptor's number to anything else;
 *  - dup/dup3/F_DUPFD are done by the kernel on the placeholder, and every
 *    duplicate (in this process, a forked child, or after exec) maps the
 *    same page: offsets and flags are shared exactly as POSIX wants;
 *  - FD_CLOEXEC is the placeholder's own flag: the kernel applies it at exec;
 *  - a forked child inherits the table (a copy) and the shared pages;
 *  - after exec, the descriptors that survived are found again from
 *    LIBGKFS_FDS (exec_state.c) and their pages mapped by the new image.
 */
#ifndef GKFS_CLIENT_FDTABLE_H
#define GKFS_CLIENT_FDTABLE_H

#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "forward.h"

#define GK_OFD_USERS 16   /* processes sharing one description we count */
#define GK_OFD_MAGIC 0x31444f46534b4647ULL   /* "GKFSOFD1" */

/* The open file description, in the placeholder's shared page. */
struct gk_ofd {
	uint64_t magic;
	int64_t offset;            /* atomic */
	uint32_t flags;            /* O_ACCMODE | status flags (atomic) */
	uint32_t is_dir;
	uint64_t dir_pos;          /* getdents: index of the next entry */
	uint64_t lock_id;          /* owner id of its OFD and flock locks (0: none yet) */
	uint32_t has_locks;        /* it took an OFD or flock lock (atomic) */
	uint64_t hold_owner;       /* process owner id of the open's hold, 0: none */
	uint32_t users_lock;       /* spin lock of users[] (shared by processes) */
	uint32_t users_overflow;   /* more sharers than users[] holds: never "last" */
	struct { int32_t pid, ndesc; } users[GK_OFD_USERS];  /* descriptors per process */
	char data_key[80];
	char cap[64];              /* data capability granted at open (like the fd's mode) */
	char path[GK_PATH_MAX + 1];   /* canonical gkfs path */
};
#define GK_OFD_MAP_SIZE 8192

/* This process's handle on one open file description. */
struct gk_file {
	int refs;                  /* table slots + users in flight (atomic) */
	struct gk_ofd *ofd;
	uint64_t ino;              /* the placeholder's inode: identifies it */
	pthread_mutex_t lock;      /* directory listing cache below */
	struct gk_dirent *dents;
	size_t ndents;
	int dents_valid;
};

/* The file behind fd with a reference taken (gk_file_put), or NULL when fd
 * is not a gkfs descriptor.  Lock-free when it is not. */
struct gk_file *gk_fd_get(int fd);
void gk_file_put(struct gk_file *f);
int gk_fd_is_gkfs(int fd);
int gk_fd_count(void);

/* New placeholder + description; returns the descriptor or -errno. */
int gk_file_open(const char *path, uint32_t flags, int is_dir,
                 const char *data_key, const char *cap, uint64_t hold_owner);
/* newfd (a kernel duplicate of a gkfs placeholder) now refers to f too. */
void gk_fd_install(int newfd, struct gk_file *f);
/* Forgets fd (if gkfs); the caller closes the kernel descriptor.  This is
 * a close: the locks it ends are released (locks.c). */
void gk_fd_forget(int fd);
/* Adopts an inherited placeholder (after exec); 0 or -errno. */
int gk_fd_adopt(int fd);
/* Calls fn for every gkfs descriptor (ascending); stops on non-zero. */
int gk_fd_each(int (*fn)(int fd, struct gk_file *f, void *arg), void *arg);

/* Offsets (shared with duplicates, also across processes). */
int64_t gk_ofd_offset(struct gk_file *f);
void gk_ofd_set_offset(struct gk_file *f, int64_t off);
/* Reserves [old, old+n) by advancing the offset; returns old. */
int64_t gk_ofd_advance(struct gk_file *f, int64_t n);

void gk_fdtable_after_fork(void);

/* Descriptor counts per process in the description's page: the OFD's
 * locks go when no live process has a descriptor of it (a process killed
 * by a signal never closed its own: its pid is checked).  delta +1/-1;
 * returns 1 when, after a -1, no descriptor is left anywhere. */
int gk_ofd_users_add(struct gk_ofd *ofd, int delta);

#endif
