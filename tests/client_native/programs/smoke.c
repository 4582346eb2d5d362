/*
 * smoke.c - a riscv64 program doing plain file system calls in a gkfs
 * directory (argv[1], under the mount prefix), run under qemu with
 * libgkfs_intercept.so preloaded by tests/client_native/test_smoke.py.
 * Prints "ok <check>" per check; any failure prints "FAIL ..." and exits 1.
 * Leaves <dir>/keep.bin (pattern bytes) and <dir>/sub/ for the test to
 * verify through the Python client.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...) do { \
	if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
	               printf(" (errno %d %s)\n", errno, strerror(errno)); exit(1); } } while (0)
#define OK(name) printf("ok %s\n", name)

static char path[4096];

static const char *
p(const char *dir, const char *name)
{
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

int
main(int argc, char **argv)
{
	const char *d = argv[1];
	size_t n = 1536 * 1024 + 123;     /* several chunks, odd tail */
	char *buf = malloc(n), *back = malloc(n);
	struct stat st;
	int fd, fd2;

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(i * 7 + i / 4096);

	fd = open(p(d, "keep.bin"), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0, "open O_CREAT %s", path);
	CHECK(write(fd, buf, 1000) == 1000, "write");
	CHECK(write(fd, buf + 1000, n - 1000) == (ssize_t)(n - 1000), "write 2");
	CHECK(fstat(fd, &st) == 0 && st.st_size == (off_t)n && S_ISREG(st.st_mode), "fstat size %ld", (long)st.st_size);
	CHECK(close(fd) == 0, "close");
	OK("create-write-fstat");

	CHECK(open(p(d, "keep.bin"), O_CREAT | O_EXCL | O_WRONLY, 0644) < 0 && errno == EEXIST, "O_EXCL");
	fd = open(p(d, "keep.bin"), O_RDONLY);
	CHECK(fd >= 0, "open rdonly");
	memset(back, 0, n);
	size_t got = 0;
	ssize_t r;
	while ((r = read(fd, back + got, 100000)) > 0)
		got += r;
	CHECK(r == 0 && got == n && !memcmp(buf, back, n), "read back %zu", got);
	CHECK(lseek(fd, 5000, SEEK_SET) == 5000, "lseek");
	char small[10];
	CHECK(pread(fd, small, 10, 524288 - 5) == 10 && !memcmp(small, buf + 524288 - 5, 10), "pread across chunk");
	CHECK(read(fd, small, 10) == 10 && !memcmp(small, buf + 5000, 10), "read after pread keeps offset");
	CHECK(write(fd, "x", 1) < 0 && errno == EBADF, "write on O_RDONLY");
	OK("read-lseek-pread");

	/* dup shares the offset */
	fd2 = dup(fd);
	CHECK(fd2 >= 0 && fd2 != fd, "dup");
	CHECK(lseek(fd, 100, SEEK_SET) == 100 && lseek(fd2, 0, SEEK_CUR) == 100, "shared offset");
	CHECK(fcntl(fd2, F_GETFD) == 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0, "cloexec per fd");
	close(fd2);
	CHECK(read(fd, small, 1) == 1, "fd still good after closing its dup");
	OK("dup");

	/* fork: the child reads at the shared offset, the parent sees it move */
	pid_t pid = fork();
	if (pid == 0) {
		char c[50];
		_exit(read(fd, c, 50) == 50 && !memcmp(c, buf + 101, 50) ? 0 : 3);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child read, status %d", status);
	CHECK(lseek(fd, 0, SEEK_CUR) == 151, "offset after the child's read");
	OK("fork");

	/* locks (contention is tests/client_native/programs/locks.c) */
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
	CHECK(fcntl(fd, F_SETLK, &fl) == 0, "fcntl lock");
	CHECK(flock(fd, LOCK_SH) == 0, "flock");
	OK("locks");

	/* private mmap */
	char *m = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 524288);
	CHECK(m != MAP_FAILED && !memcmp(m, buf + 524288, 8192), "mmap private");
	munmap(m, 8192);
	CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EACCES, "mmap shared writable of an O_RDONLY descriptor");
	close(fd);
	OK("mmap");

	/* vector I/O and truncate on another file */
	fd = open(p(d, "vec.txt"), O_CREAT | O_RDWR | O_TRUNC, 0600);
	CHECK(fd >= 0, "open vec");
	struct iovec iov[2] = {{"hello ", 6}, {"world\n", 6}};
	CHECK(writev(fd, iov, 2) == 12, "writev");
	CHECK(ftruncate(fd, 5) == 0 && fstat(fd, &st) == 0 && st.st_size == 5, "ftruncate");
	char h[6] = {0};
	CHECK(pread(fd, h, 10, 0) == 5 && !strcmp(h, "hello"), "pread after truncate");
	close(fd);
	OK("writev-truncate");

	/* directories */
	CHECK(mkdir(p(d, "sub"), 0755) == 0, "mkdir");
	CHECK(mkdir(p(d, "sub"), 0755) < 0 && errno == EEXIST, "mkdir EEXIST");
	CHECK(stat(p(d, "sub"), &st) == 0 && S_ISDIR(st.st_mode), "stat dir");
	CHECK(stat(p(d, "missing"), &st) < 0 && errno == ENOENT, "stat ENOENT");
	DIR *dir = opendir(d);
	CHECK(dir, "opendir");
	int seen = 0;
	struct dirent *e;
	while ((e = readdir(dir)))
		seen |= (!strcmp(e->d_name, "keep.bin") && e->d_type == DT_REG) |
		        (!strcmp(e->d_name, "sub") && e->d_type == DT_DIR) << 1 |
		        (!strcmp(e->d_name, "vec.txt")) << 2 | (!strcmp(e->d_name, ".")) << 3;
	closedir(dir);
	CHECK(seen == 15, "readdir saw %#x", seen);
	OK("mkdir-getdents");

	/* relative paths from a cwd inside gkfs, '..' back out */
	char cwd[4096];
	CHECK(chdir(d) == 0 && getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, d), "chdir/getcwd %s", cwd);
	CHECK(access("keep.bin", R_OK) == 0 && access("sub/../vec.txt", F_OK) == 0, "access relative");
	CHECK(rename("vec.txt", "sub/moved.txt") == 0 && stat("sub/moved.txt", &st) == 0 && st.st_size == 5, "rename");
	CHECK(symlink("../keep.bin", "sub/link") == 0, "symlink");
	CHECK(readlink("sub/link", cwd, sizeof(cwd)) == 11, "readlink");
	CHECK(stat("sub/link", &st) == 0 && st.st_size == (off_t)n, "stat through symlink");
	CHECK(rmdir("sub") < 0 && errno == ENOTEMPTY, "rmdir ENOTEMPTY");
	CHECK(unlink("sub/moved.txt") == 0 && unlink("sub/link") == 0, "unlink");
	CHECK(open("/proc/self/status", O_RDONLY) >= 0, "kernel path still works under a gkfs cwd");
	CHECK(chdir("/") == 0 && getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, "/"), "chdir out");
	OK("cwd-rename-symlink-unlink");

	/* copy_file_range answers so that cp falls back to read/write */
	fd = open(p(d, "keep.bin"), O_RDONLY);
	fd2 = open("/dev/null", O_WRONLY);
	CHECK(copy_file_range(fd, NULL, fd2, NULL, 10, 0) < 0 && errno == EXDEV, "copy_file_range");
	close(fd);
	close(fd2);
	OK("copy_file_range");
	printf("done\n");
	return 0;
}
