/*
 * internal_fds.h - the client's own descriptors (libzmq's), kept at high
 * numbers and out of the program's reach (see internal_fds.c for why).
 */
#ifndef GKFS_CLIENT_INTERNAL_FDS_H
#define GKFS_CLIENT_INTERNAL_FDS_H

/* A system call made by the client itself (inside a hook, or by a libzmq
 * thread): 0 with *res set when it created descriptors (moved high), 1 to
 * let it go to the kernel unchanged. */
int gk_internal_syscall(long nr, const long *a, long *res);
/* 1 when fd is one of the client's own descriptors. */
int gk_internal_fd(long fd);
/* A descriptor the client made with a raw call (local_conn.c): moved high
 * and marked as the client's (returned); gk_internal_forget before its
 * raw close. */
long gk_internal_adopt(long fd);
void gk_internal_forget(long fd);
/* The program's close_range, leaving the client's descriptors open. */
long gk_internal_close_range(unsigned lo, unsigned hi, unsigned flags);

/* A clone made inside a hook (libzmq starting a thread): noted so that
 * the new thread knows it is the client's (gk_internal_thread_started). */
void gk_internal_note_clone(long nr, const long *a);
int gk_internal_thread_started(void);

void gk_internal_after_fork(void);

/* hook.c: marks the calling thread as running client code (returns the old
 * state for gk_hook_leave_client). */
int gk_hook_enter_client(void);
void gk_hook_leave_client(int old);

#endif
