/*
 * mmap_shared.h - shared writable mappings of gkfs files: an anonymous
 * shared mapping filled with the file's bytes, written back (only the
 * bytes this process changed) at msync, munmap, close and exit.
 */
#ifndef GKFS_CLIENT_MMAP_SHARED_H
#define GKFS_CLIENT_MMAP_SHARED_H

#include <stddef.h>
#include <stdint.h>

struct gk_file;

/* mmap(addr, len, prot, flags | MAP_SHARED, fd of f, off); the address or
 * -errno. */
long gk_mmap_shared(struct gk_file *f, void *addr, size_t len, int prot, int flags,
                    int64_t off);
/* 1 when [addr, addr+len) touches a shared gkfs mapping (then *res is the
 * call's result), 0 when the kernel should do the call alone. */
int gk_mmap_munmap(void *addr, size_t len, long *res);
int gk_mmap_msync(void *addr, size_t len, int flags, long *res);
/* Write back every mapping of f (close) / of this process (exit). */
void gk_mmap_on_close(struct gk_file *f);
void gk_mmap_at_exit(void);
/* 1 when [addr, addr+len) touches a shared gkfs mapping (mremap refused). */
int gk_mmap_mremap(void *addr, size_t len);
void gk_mmap_after_fork(void);

#endif
