/* enotdir.c BASE: a regular file used as a directory ("f/x", "f/", "f/.")
 * through the path calls, one line "<case> <errno>" each (0 = success).
 * The test runs it on a kernel directory and under the mount prefix and
 * compares the two outputs: the kernel's answers are the expectation. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[4096];

static const char *
at(const char *rel)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf), "%s/%s", base, rel);
	return buf;
}

static void
report(const char *name, int rc)
{
	printf("%s %d\n", name, rc < 0 ? errno : 0);
}

static void
report_fd(const char *name, int fd)
{
	report(name, fd);
	if (fd >= 0)
		close(fd);
}

int
main(int argc, char **argv)
{
	struct stat st;
	struct statx sx;
	int fd;

	if (argc != 2)
		return 2;
	snprintf(base, sizeof(base), "%s", argv[1]);
	if (mkdir(at("d"), 0755) || (fd = open(at("d/f"), O_CREAT | O_WRONLY, 0644)) < 0 ||
	    write(fd, "data", 4) != 4 || close(fd) || symlink("f", at("d/lf")) ||
	    symlink(".", at("d/ld"))) {
		perror("setup");
		return 1;
	}
	report("stat f/x", stat(at("d/f/x"), &st));
	report("stat f/x/y", stat(at("d/f/x/y"), &st));
	report("stat f/", stat(at("d/f/"), &st));
	report("stat f/.", stat(at("d/f/."), &st));
	report("lstat f/", lstat(at("d/f/"), &st));
	report("lstat lf/", lstat(at("d/lf/"), &st));
	report("stat ld/", stat(at("d/ld/"), &st));
	report("stat d/", stat(at("d/"), &st));
	report("stat nope/x", stat(at("d/nope/x"), &st));
	report("statx f/", statx(AT_FDCWD, at("d/f/"), 0, STATX_BASIC_STATS, &sx));
	report("statx f/x", statx(AT_FDCWD, at("d/f/x"), AT_SYMLINK_NOFOLLOW,
	                          STATX_BASIC_STATS, &sx));
	report("access f/", access(at("d/f/"), F_OK));
	report("access f/x", access(at("d/f/x"), R_OK));
	report_fd("open f/", open(at("d/f/"), O_RDONLY));
	report_fd("open f/x", open(at("d/f/x"), O_RDONLY));
	report_fd("open f/ O_CREAT", open(at("d/f/"), O_WRONLY | O_CREAT, 0644));
	report_fd("open new/ O_CREAT", open(at("d/new/"), O_WRONLY | O_CREAT, 0644));
	report_fd("open f/x O_CREAT", open(at("d/f/x"), O_WRONLY | O_CREAT, 0644));
	report_fd("open f/x/y O_CREAT", open(at("d/f/x/y"), O_WRONLY | O_CREAT, 0644));
	report_fd("open d/ O_WRONLY", open(at("d/"), O_WRONLY));
	report_fd("open d/", open(at("d/"), O_RDONLY));
	report("mkdir f/x", mkdir(at("d/f/x"), 0755));
	report("mkdir f/x/y", mkdir(at("d/f/x/y"), 0755));
	report("unlink f/", unlink(at("d/f/")));
	report("unlink lf/", unlink(at("d/lf/")));
	report("unlink f/x", unlink(at("d/f/x")));
	report("rmdir f/x", rmdir(at("d/f/x")));
	report("rmdir f/", rmdir(at("d/f/")));
	report("truncate f/", truncate(at("d/f/"), 0));
	/* the refused calls changed nothing */
	report("stat f", stat(at("d/f"), &st));
	printf("size f %lld\n", (long long)st.st_size);
	report("lstat lf", lstat(at("d/lf"), &st));
	return 0;
}
