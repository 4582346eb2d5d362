/*
 * paths.h - which paths are gkfs's: the mount prefix, a current directory
 * inside gkfs, *at calls with a gkfs directory descriptor, '.' and '..'.
 *
 * Resolution is lexical ('..' removes the previous component, as gkfs has
 * no kernel symlinks to cross).  A relative path under a gkfs cwd (or a
 * gkfs dirfd) that leads out of gkfs is rewritten to an absolute path for
 * the kernel.
 */
#ifndef GKFS_CLIENT_PATHS_H
#define GKFS_CLIENT_PATHS_H

#include "config.h"

enum gk_path_kind {
	GK_KERNEL = 0,          /* not gkfs: pass the call through unchanged */
	GK_KERNEL_ABS = 1,      /* not gkfs, but use `path` (absolute) + AT_FDCWD */
	GK_GKFS = 2,            /* gkfs: `path` is the canonical gkfs path */
};

struct gk_resolved {
	int kind;
	/* The spelling requires a directory ("f/", "f/.", "f/.."): the
	 * canonical path has lost that, so hooks check the record's type
	 * (ENOTDIR for a file, as the kernel). Set for GK_GKFS only. */
	int must_dir;
	char path[2 * GK_PATH_MAX + 2];
};

/* Returns the kind, or -errno (ENAMETOOLONG, ENOTDIR for a gkfs dirfd that
 * is not a directory, EINVAL...). */
int gk_resolve(int dirfd, const char *path, struct gk_resolved *out);

/* Lexical normalisation of an absolute path ('.', '..', '//'). -errno. */
int gk_normalize(const char *in, char *out, size_t size);

/* The directory part of a canonical gkfs path ("/" for "/a"); out holds
 * GK_PATH_MAX + 1 bytes. */
void gk_parent_path(const char *path, char *out);

/* Current directory. */
int gk_cwd_in_gkfs(void);
/* Sets the cwd to gkfs path p (NULL: leave gkfs; kernel cwd re-read). */
void gk_cwd_set_gkfs(const char *p);
void gk_cwd_kernel_changed(void);
/* Full cwd (mount prefix + gkfs cwd) when inside gkfs; 0 or -ERANGE. */
int gk_cwd_get(char *buf, size_t size, size_t *len);
const char *gk_cwd_gkfs_path(char *buf, size_t size);  /* NULL if not in gkfs */

/* Kernel directories that are ancestors of the mount prefix ("/", say),
 * opened by the program: *at calls relative to them may reach gkfs. */
void gk_paths_note_kernel_dir(int fd, const char *abs_path);
void gk_paths_forget_fd(int fd);
/* 1 if abs (normalised) is the mount prefix's ancestor (or "/"). */
int gk_is_mount_ancestor(const char *abs);

void gk_paths_after_fork(void);

#endif
