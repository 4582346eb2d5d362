/*
 * locks.h - fcntl record locks (process and OFD) and flock on gkfs files,
 * held by the daemons (docs/protocol.md 4.3 lock, 4.5).
 */
#ifndef GKFS_CLIENT_LOCKS_H
#define GKFS_CLIENT_LOCKS_H

#include <fcntl.h>

struct gk_file;

/* F_GETLK, F_SETLK, F_SETLKW and the F_OFD_ variants; 0 or -errno. */
int gkfs_fcntl_lock(struct gk_file *f, int cmd, struct flock *fl);
/* flock(2); 0 or -errno. */
int gkfs_flock(struct gk_file *f, int op);
/* A descriptor of f is being closed (last: the description's last one). */
void gk_locks_on_close(struct gk_file *f, int last);
/* The process is exiting: let go of its record locks now. */
void gk_locks_at_exit(void);
/* In a forked child: the parent's process locks are not the child's. */
void gk_locks_after_fork(void);

#endif
