/* statcache.c: the preload's readdir stat cache seen by one process.
 *
 *   statcache own DIR   DIR holds files a b c d e f g (c and e non-empty):
 *                       list DIR, then change a..f through this process and
 *                       check that each stat right after sees the change;
 *                       g (untouched) is stat'ed last.  Prints "ok".
 *   statcache wait DIR MS   list DIR, print "listed", wait for a line on
 *                       stdin, sleep MS ms, then print "name size" for
 *                       every listed name ("name -" when it is gone).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char names[256][256];
static int n_names;

static void
list(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d) {
		perror(dir);
		exit(1);
	}
	n_names = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n_names < 256)
			snprintf(names[n_names++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);
}

static void
fail(const char *what)
{
	fprintf(stderr, "statcache: %s (errno %d)\n", what, errno);
	exit(1);
}

static int
lstat_at(const char *dir, const char *name, struct stat *st)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return fstatat(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW);
}

static int
own(const char *dir)
{
	char p[4096], q[4096];
	struct stat st;
	int fd;

	list(dir);
	snprintf(p, sizeof(p), "%s/a", dir);
	if (unlink(p))
		fail("unlink a");
	if (!lstat_at(dir, "a", &st) || errno != ENOENT)
		fail("a still there after unlink");
	snprintf(p, sizeof(p), "%s/b", dir);
	snprintf(q, sizeof(q), "%s/b2", dir);
	if (rename(p, q))
		fail("rename b");
	if (!lstat_at(dir, "b", &st) || errno != ENOENT)
		fail("b still there after rename");
	if (lstat_at(dir, "b2", &st))
		fail("b2 missing after rename");
	snprintf(p, sizeof(p), "%s/c", dir);
	fd = open(p, O_WRONLY);
	if (fd < 0 || pwrite(fd, "0123456789", 10, 1000) != 10 || close(fd))
		fail("write c");
	if (lstat_at(dir, "c", &st) || st.st_size != 1010)
		fail("c: size of the write not seen");
	snprintf(p, sizeof(p), "%s/d", dir);
	if (chmod(p, 0600))
		fail("chmod d");
	if (lstat_at(dir, "d", &st) || (st.st_mode & 07777) != 0600)
		fail("d: mode of the chmod not seen");
	snprintf(p, sizeof(p), "%s/e", dir);
	if (truncate(p, 0))
		fail("truncate e");
	if (lstat_at(dir, "e", &st) || st.st_size != 0)
		fail("e: size of the truncate not seen");
	snprintf(p, sizeof(p), "%s/f", dir);
	struct timespec ts[2] = {{5, 0}, {7, 0}};
	if (utimensat(AT_FDCWD, p, ts, 0))
		fail("utimensat f");
	if (lstat_at(dir, "f", &st) || st.st_mtim.tv_sec != 7)
		fail("f: mtime of utimensat not seen");
	if (lstat_at(dir, "g", &st) || !S_ISREG(st.st_mode))
		fail("g");
	puts("ok");
	return 0;
}

static int
wait_then_stat(const char *dir, int ms)
{
	char line[16];
	struct stat st;

	list(dir);
	puts("listed");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		fail("stdin");
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
	for (int i = 0; i < n_names; i++) {
		if (lstat_at(dir, names[i], &st))
			printf("%s -\n", names[i]);
		else
			printf("%s %lld\n", names[i], (long long)st.st_size);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "own"))
		return own(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "wait"))
		return wait_then_stat(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: statcache own DIR | wait DIR MS\n");
	return 2;
}
