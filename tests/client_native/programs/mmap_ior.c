/*
 * mmap_ior.c - shared writable mmap of gkfs files, run under qemu with
 * libgkfs_intercept.so preloaded by tests/client_native/test_mmap.py.
 *
 * Part 1 mimics IOR's MMAP back end on one shared file (IOR itself is not
 * packaged in Debian): NRANKS forked ranks each map the WHOLE file
 * MAP_SHARED after rank 0 sized it with ftruncate, memcpy their transfers
 * into their own blocks of each segment (IOR's segmented layout), msync
 * after each transfer (IOR -e), munmap and close; then each rank maps the
 * file read-only and checks the block of its neighbour (IOR -C) word by
 * word against IOR-style patterns (offset ^ rank ^ seed).
 * Part 2 checks exactly what another process sees and when.
 * argv[1]: a gkfs directory.  "ok <check>" per check; failures "FAIL ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...) do { \
	if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
	               printf(" (errno %d %s)\n", errno, strerror(errno)); fflush(stdout); exit(1); } } while (0)
#define OK(name) do { printf("ok %s\n", name); fflush(stdout); } while (0)

#define NRANKS 4
#define SEGMENTS 3
#define BLOCK (96 * 1024)          /* not a chunk multiple: blocks straddle chunks */
#define XFER (32 * 1024)
#define FILESIZE ((size_t)NRANKS * BLOCK * SEGMENTS)
#define SEED 0x5eed

static uint64_t
word(uint64_t off, int rank)
{
	return (off * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)rank << 56) ^ SEED;
}

static void
fill(uint64_t *buf, uint64_t off, size_t n, int rank)
{
	for (size_t i = 0; i < n / 8; i++)
		buf[i] = word(off + 8 * i, rank);
}

static int
rank_write(const char *path, int rank)
{
	uint64_t buf[XFER / 8];
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0, "rank %d open", rank);
	char *m = mmap(NULL, FILESIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "rank %d mmap", rank);
	for (int s = 0; s < SEGMENTS; s++)
		for (size_t x = 0; x < BLOCK; x += XFER) {
			uint64_t off = ((uint64_t)s * NRANKS + rank) * BLOCK + x;
			fill(buf, off, XFER, rank);
			memcpy(m + off, buf, XFER);
			CHECK(msync(m + (off & ~4095ULL), XFER + (off & 4095), MS_SYNC) == 0, "msync");
		}
	CHECK(munmap(m, FILESIZE) == 0 && close(fd) == 0, "rank %d munmap/close", rank);
	return 0;
}

static int
rank_check(const char *path, int rank)
{
	int other = (rank + 1) % NRANKS, fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "rank %d open ro", rank);
	const uint64_t *m = mmap(NULL, FILESIZE, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "rank %d mmap ro", rank);
	long errors = 0;
	for (int s = 0; s < SEGMENTS; s++) {
		uint64_t base = ((uint64_t)s * NRANKS + other) * BLOCK;
		for (uint64_t o = base; o < base + BLOCK; o += 8)
			if (m[o / 8] != word(o, other) && errors++ < 3)
				printf("rank %d: word at %llu is %#llx, expected %#llx\n", rank,
				       (unsigned long long)o, (unsigned long long)m[o / 8],
				       (unsigned long long)word(o, other));
	}
	munmap((void *)m, FILESIZE);
	close(fd);
	CHECK(errors == 0, "rank %d: %ld wrong words in rank %d's blocks", rank, errors, other);
	return 0;
}

static void
run_ranks(const char *path, int (*fn)(const char *, int))
{
	pid_t pids[NRANKS];
	for (int r = 0; r < NRANKS; r++)
		if ((pids[r] = fork()) == 0)
			_exit(fn(path, r));
	for (int r = 0; r < NRANKS; r++) {
		int st;
		CHECK(waitpid(pids[r], &st, 0) == pids[r] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "rank %d status %#x", r, st);
	}
}

int
main(int argc, char **argv)
{
	char path[4096], p2[4096], got[16];
	snprintf(path, sizeof(path), "%s/ior.mmap", argv[1]);
	snprintf(p2, sizeof(p2), "%s/visible", argv[1]);

	/* 1. IOR's MMAP back end, write then read-back check */
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, FILESIZE) == 0 && close(fd) == 0, "create and size");
	run_ranks(path, rank_write);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (size_t)st.st_size == FILESIZE, "size %lld", (long long)st.st_size);
	run_ranks(path, rank_check);
	OK("ior mmap write/check");

	/* 2. what another process sees, and when */
	fd = open(p2, O_CREAT | O_RDWR | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, "aaaaaaaaaaaaaaaa", 16) == 16, "create p2");
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED && !memcmp(m, "aaaaaaaaaaaaaaaa", 16), "map p2");
	memcpy(m, "BB", 2);
	int r2 = open(p2, O_RDONLY);
	CHECK(pread(r2, got, 16, 0) == 16 && !memcmp(got, "aaaa", 4), "not visible before msync");
	CHECK(msync(m, 4096, MS_SYNC) == 0, "msync");
	CHECK(pread(r2, got, 16, 0) == 16 && !memcmp(got, "BBaa", 4), "visible after msync");
	memcpy(m + 4, "CC", 2);
	m[100] = 'Z';          /* beyond EOF (16 bytes): never stored, as the kernel */
	pid_t pid = fork();
	if (pid == 0) {        /* the child shares the mapping; its writes go back at its exit */
		memcpy(m + 8, "DD", 2);
		_exit(0);
	}
	int wst;
	CHECK(waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "child");
	CHECK(pread(r2, got, 16, 0) == 16 && !memcmp(got, "BBaaCCaaDDaa", 12),
	      "child's exit wrote back the shared mapping: %.16s", got);
	/* another process's write(), then MS_INVALIDATE reloads what we did not change */
	int w = open(p2, O_WRONLY);
	CHECK(pwrite(w, "EE", 2, 12) == 2 && close(w) == 0, "pwrite by another descriptor");
	CHECK(m[12] == 'a', "an existing mapping keeps what it read");
	CHECK(msync(m, 4096, MS_SYNC | MS_INVALIDATE) == 0 && m[12] == 'E' && m[0] == 'B', "MS_INVALIDATE");
	memcpy(m + 14, "FF", 2);
	CHECK(close(fd) == 0, "close");         /* the mapping stays, written back now */
	CHECK(pread(r2, got, 16, 0) == 16 && !memcmp(got, "BBaaCCaaDDaaEEFF", 16),
	      "close wrote back: %.16s", got);
	memcpy(m + 2, "GG", 2);
	CHECK(munmap(m, 4096) == 0, "munmap");
	CHECK(pread(r2, got, 16, 0) == 16 && !memcmp(got, "BBGGCC", 6), "munmap wrote back");
	CHECK(fstat(r2, &st) == 0 && st.st_size == 16, "the size did not grow");
	int ro = open(p2, O_RDONLY);
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0) == MAP_FAILED &&
	      errno == EACCES, "O_RDONLY descriptor: EACCES");
	OK("visibility");
	printf("done\n");
	return 0;
}
