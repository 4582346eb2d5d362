/*
 * unlinked.c - files unlinked (or replaced by rename) while open keep
 * their data until the last descriptor closes, run under qemu with
 * libgkfs_intercept.so preloaded by tests/client_native/test_unlinked.py.
 * argv[1]: a gkfs directory.  "ok <check>" per check; failures "FAIL ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...) do { \
	if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
	               printf(" (errno %d %s)\n", errno, strerror(errno)); fflush(stdout); exit(1); } } while (0)
#define OK(name) do { printf("ok %s\n", name); fflush(stdout); } while (0)
#define N (200 * 1024)     /* several 64 KiB chunks, on every daemon */

static char a[N], b[N];

int
main(int argc, char **argv)
{
	char f[4096], g[4096];
	struct stat st;
	snprintf(f, sizeof(f), "%s/f", argv[1]);
	snprintf(g, sizeof(g), "%s/g", argv[1]);
	for (int i = 0; i < N; i++)
		a[i] = (char)(i * 13 + i / 1000);
	alarm(120);

	/* 1. unlink while open: the descriptor keeps the file */
	int fd = open(f, O_CREAT | O_RDWR | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, a, N) == N, "write");
	int fd2 = open(f, O_RDONLY);
	CHECK(unlink(f) == 0, "unlink");
	CHECK(stat(f, &st) < 0 && errno == ENOENT, "the name is gone");
	CHECK(fstat(fd, &st) == 0 && st.st_size == N && st.st_nlink == 0, "fstat: size %lld nlink %lu",
	      (long long)st.st_size, (unsigned long)st.st_nlink);
	CHECK(pread(fd2, b, N, 0) == N && !memcmp(a, b, N), "read after unlink");
	/* a new file at the same name is another file */
	int nf = open(f, O_CREAT | O_RDWR | O_EXCL, 0600);
	CHECK(nf >= 0 && write(nf, "new file", 8) == 8 && close(nf) == 0, "a new file at the name");
	CHECK(pwrite(fd, "XYZ", 3, N) == 3 && fstat(fd, &st) == 0 && st.st_size == N + 3, "grow the unlinked file");
	CHECK(lseek(fd2, 0, SEEK_END) == N + 3, "SEEK_END of the unlinked file");
	CHECK(pread(fd2, b, 3, N) == 3 && !memcmp(b, "XYZ", 3), "read what was appended");
	CHECK(ftruncate(fd, 1000) == 0 && fstat(fd2, &st) == 0 && st.st_size == 1000, "ftruncate");
	CHECK(stat(f, &st) == 0 && st.st_size == 8, "the new file is untouched");
	close(fd);
	CHECK(pread(fd2, b, 2000, 0) == 1000 && !memcmp(a, b, 1000), "still open through the other descriptor");
	close(fd2);
	OK("unlink while open");

	/* 2. rename over an open file */
	fd = open(f, O_RDONLY);
	int gf = open(g, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(fd >= 0 && gf >= 0 && write(gf, "replacement", 11) == 11 && close(gf) == 0, "g");
	CHECK(rename(g, f) == 0, "rename g over f");
	CHECK(pread(fd, b, 100, 0) == 8 && !memcmp(b, "new file", 8), "the replaced file is still read");
	close(fd);
	fd = open(f, O_RDONLY);
	CHECK(pread(fd, b, 100, 0) == 11 && !memcmp(b, "replacement", 11), "the name has the new file");
	close(fd);
	OK("rename over an open file");

	/* 3. another process holds it; this one unlinks; the other reads */
	int up[2], down[2];      /* child -> parent, parent -> child */
	CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
	fd = open(g, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, a, N) == N && close(fd) == 0, "g data");
	pid_t pid = fork();
	if (pid == 0) {
		int cfd = open(g, O_RDONLY);
		char c;
		CHECK(cfd >= 0 && write(up[1], "r", 1) == 1, "child open");
		CHECK(read(down[0], &c, 1) == 1, "child wait");     /* the parent unlinked g */
		CHECK(pread(cfd, b, N, 0) == N && !memcmp(a, b, N), "child reads after the parent's unlink");
		_exit(0);
	}
	char c;
	CHECK(read(up[0], &c, 1) == 1, "parent wait");
	CHECK(unlink(g) == 0 && write(down[1], "u", 1) == 1, "parent unlink");
	int wst;
	CHECK(waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "child status %#x", wst);
	OK("held by another process");
	unlink(f);
	printf("done\n");
	return 0;
}
