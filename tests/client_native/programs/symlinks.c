/*
 * symlinks.c - symlinks in every path component, run under qemu with
 * libgkfs_intercept.so preloaded by tests/client_native/test_symlinks.py.
 * argv[1]: an empty gkfs directory; argv[2]: an empty local directory.
 * Prints "ok <check>" per check; a failure prints "FAIL ..." and exits 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond, ...) do { \
	if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
	               printf(" (errno %d %s)\n", errno, strerror(errno)); exit(1); } } while (0)
#define OK(name) printf("ok %s\n", name)

static char buf[8][4096];
static int nb;

static const char *
P(const char *fmt, const char *a, const char *b)
{
	char *p = buf[nb++ % 8];
	snprintf(p, 4096, fmt, a, b);
	return p;
}

int
main(int argc, char **argv)
{
	const char *d = argv[1], *local = argv[2];
	struct stat st;
	char t[4096];

	CHECK(mkdir(P("%s/real", d, 0), 0755) == 0, "mkdir real");
	CHECK(mkdir(P("%s/real/sub", d, 0), 0755) == 0, "mkdir real/sub");
	CHECK(symlink("real", P("%s/lnk", d, 0)) == 0, "symlink lnk -> real");
	CHECK(symlink(P("%s/real", d, 0), P("%s/abs", d, 0)) == 0, "symlink abs");
	CHECK(symlink(local, P("%s/out", d, 0)) == 0, "symlink out -> local");

	/* create, write, read through a link in the middle */
	int fd = open(P("%s/lnk/sub/f", d, 0), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && write(fd, "hello", 5) == 5 && close(fd) == 0, "create through lnk");
	CHECK(stat(P("%s/real/sub/f", d, 0), &st) == 0 && st.st_size == 5, "the file is in real/sub");
	CHECK(lstat(P("%s/abs/sub/f", d, 0), &st) == 0 && S_ISREG(st.st_mode), "lstat through abs");
	fd = open(P("%s/abs/sub/f", d, 0), O_RDONLY);
	CHECK(fd >= 0 && read(fd, t, 10) == 5 && !memcmp(t, "hello", 5), "read through abs");
	close(fd);
	CHECK(access(P("%s/lnk/sub/f", d, 0), R_OK) == 0, "access");
	CHECK(mkdir(P("%s/lnk/sub2", d, 0), 0755) == 0 && stat(P("%s/real/sub2", d, 0), &st) == 0 &&
	      S_ISDIR(st.st_mode), "mkdir through lnk");
	CHECK(rename(P("%s/lnk/sub/f", d, 0), P("%s/abs/sub2/g", d, 0)) == 0 &&
	      stat(P("%s/real/sub2/g", d, 0), &st) == 0, "rename through links");
	CHECK(symlink("g", P("%s/lnk/sub2/h", d, 0)) == 0 &&
	      readlink(P("%s/abs/sub2/h", d, 0), t, sizeof(t)) == 1 && t[0] == 'g', "symlink/readlink through links");
	CHECK(stat(P("%s/lnk/sub2/h", d, 0), &st) == 0 && st.st_size == 5, "a link after a link");
	CHECK(truncate(P("%s/lnk/sub2/g", d, 0), 2) == 0 && stat(P("%s/real/sub2/g", d, 0), &st) == 0 &&
	      st.st_size == 2, "truncate through lnk");
	CHECK(chmod(P("%s/lnk/sub2/g", d, 0), 0600) == 0 && stat(P("%s/real/sub2/g", d, 0), &st) == 0 &&
	      (st.st_mode & 0777) == 0600, "chmod through lnk");
	DIR *dir = opendir(P("%s/lnk/sub2", d, 0));
	int n = 0;
	for (struct dirent *e; dir && (e = readdir(dir));)
		n += e->d_name[0] != '.';
	CHECK(dir && n == 2, "readdir through lnk (%d entries)", n);
	closedir(dir);
	CHECK(chdir(P("%s/lnk/sub2", d, 0)) == 0 && getcwd(t, sizeof(t)) &&
	      !strcmp(t, P("%s/real/sub2", d, 0)), "chdir through lnk: cwd %s", t);
	CHECK(stat("g", &st) == 0 && st.st_size == 2, "relative after chdir");
	CHECK(unlink(P("%s/lnk/sub2/h", d, 0)) == 0 && unlink(P("%s/abs/sub2/g", d, 0)) == 0 &&
	      stat(P("%s/real/sub2/g", d, 0), &st) < 0, "unlink through links");
	CHECK(chdir("/") == 0 && rmdir(P("%s/lnk/sub2", d, 0)) == 0 &&
	      stat(P("%s/real/sub2", d, 0), &st) < 0 && errno == ENOENT, "rmdir through lnk");
	CHECK(stat(P("%s/lnk/nothing/x", d, 0), &st) < 0 && errno == ENOENT, "ENOENT under a link");
	CHECK(symlink("real/sub/../sub", P("%s/file-link", d, 0)) == 0, "symlink");
	fd = open(P("%s/real/plain", d, 0), O_CREAT | O_WRONLY, 0644);
	close(fd);
	CHECK(symlink("real/plain", P("%s/flink", d, 0)) == 0 &&
	      stat(P("%s/flink/x", d, 0), &st) < 0 && errno == ENOTDIR, "ENOTDIR under a link to a file");
	OK("links in the middle");

	/* a link in the middle leading out of gkfs */
	fd = open(P("%s/out/made-by-gkfs-link", d, 0), O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1 && close(fd) == 0, "create through a link out of gkfs");
	CHECK(mkdir(P("%s/out/dir", d, 0), 0755) == 0, "mkdir through a link out of gkfs");
	CHECK(stat(P("%s/made-by-gkfs-link", local, 0), &st) == 0 && st.st_size == 1, "it is local");
	OK("links out of gkfs");

	/* ELOOP after 40 links, as the kernel */
	CHECK(symlink("real", P("%s/l0", d, 0)) == 0, "l0");
	for (int i = 1; i <= 40; i++) {
		char name[32], prev[32];
		snprintf(name, sizeof(name), "l%d", i);
		snprintf(prev, sizeof(prev), "l%d", i - 1);
		CHECK(symlink(prev, P("%s/%s", d, name)) == 0, "symlink %s", name);
	}
	CHECK(stat(P("%s/l39/sub", d, 0), &st) == 0, "40 links in a row");
	CHECK(stat(P("%s/l40/sub", d, 0), &st) < 0 && errno == ELOOP, "41 links: ELOOP");
	CHECK(open(P("%s/l40/sub/new", d, 0), O_CREAT | O_WRONLY, 0644) < 0 && errno == ELOOP, "open: ELOOP");
	CHECK(symlink("b", P("%s/a", d, 0)) == 0 && symlink("a", P("%s/b", d, 0)) == 0, "loop");
	CHECK(stat(P("%s/a/x", d, 0), &st) < 0 && errno == ELOOP, "a loop in the middle: ELOOP");
	CHECK(mkdir(P("%s/a/x", d, 0), 0755) < 0 && errno == ELOOP, "mkdir: ELOOP");
	OK("ELOOP");
	printf("done\n");
	return 0;
}
