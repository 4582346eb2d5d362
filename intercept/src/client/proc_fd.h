/*
 * proc_fd.h - /proc/self/fd/N (and its other spellings) for gkfs
 * descriptors: see proc_fd.c.
 */
#ifndef GKFS_CLIENT_PROC_FD_H
#define GKFS_CLIENT_PROC_FD_H

#include <stddef.h>

/* 1 when path names a gkfs descriptor through /proc or /dev/fd: out then
 * holds mount prefix + the descriptor's gkfs path (+ any rest of path), and
 * *exact says whether path was the link itself (no rest).  0 otherwise. */
int gk_proc_fd_path(const char *path, char *out, size_t size, int *exact);

#endif
