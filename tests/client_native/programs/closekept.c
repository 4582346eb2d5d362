/* closekept.c MOUNT OTHERDIR LOCALFILE: close() of the descriptors the
 * client keeps a record of must still reach it, now that close() of any
 * other descriptor goes straight to the kernel (the entry's fast path,
 * issue 9 part 4).  Prints "ok" or the first failed check.
 *  1. a kernel directory above the mount (remembered for *at calls),
 *     closed, its number reused by an unrelated directory: an *at call
 *     through the new one must not land in gkfs;
 *  2. a gkfs descriptor, closed, its number reused by a local file: a
 *     read must return the local file's bytes;
 *  3. the client's own descriptors (libzmq's, open after a gkfs call):
 *     the program's close() of one is refused with EBADF, and gkfs keeps
 *     working. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(c, what) do { if (!(c)) { printf("FAIL %s (errno %d)\n", what, errno); return 1; } } while (0)

int
main(int argc, char **argv)
{
	char mount[4096], parent[4096], name[4096], rel[8192], path[8192], buf[16];
	int d, e, g, l, n, internal = 0;

	if (argc != 4)
		return 2;
	snprintf(mount, sizeof(mount), "%s", argv[1]);
	snprintf(parent, sizeof(parent), "%s", argv[1]);
	snprintf(name, sizeof(name), "%s", basename(mount));
	dirname(parent);
	snprintf(rel, sizeof(rel), "%s/closekept.txt", name);
	snprintf(path, sizeof(path), "%s/closekept.txt", argv[1]);

	/* 1 */
	d = open(parent, O_RDONLY | O_DIRECTORY);
	CHECK(d >= 0, "open parent");
	g = openat(d, rel, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	CHECK(g >= 0, "openat(parent, mount/file) creates in gkfs");
	CHECK(write(g, "gkfs", 4) == 4, "write gkfs");
	CHECK(close(g) == 0, "close gkfs");
	CHECK(close(d) == 0, "close parent");
	e = open(argv[2], O_RDONLY | O_DIRECTORY);
	CHECK(e == d, "other directory reuses the number");
	errno = 0;
	CHECK(openat(e, rel, O_RDONLY) < 0 && errno == ENOENT,
	      "openat through the reused number stays in the kernel");
	CHECK(close(e) == 0, "close other");

	/* 2 */
	g = open(path, O_RDONLY);
	CHECK(g >= 0, "open gkfs file");
	CHECK(close(g) == 0, "close gkfs file");
	l = open(argv[3], O_RDONLY);
	CHECK(l == g, "local file reuses the number");
	n = (int)read(l, buf, sizeof(buf));
	CHECK(n == 5 && memcmp(buf, "local", 5) == 0, "read the local file's bytes");
	CHECK(close(l) == 0, "close local");

	/* 3 */
	for (int fd = 3; fd < 4096; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		internal++;
		errno = 0;
		CHECK(close(fd) < 0 && errno == EBADF, "close of the client's own descriptor refused");
	}
	CHECK(internal > 0, "the client has descriptors of its own");
	g = open(path, O_RDONLY);
	CHECK(g >= 0 && read(g, buf, sizeof(buf)) == 4 && memcmp(buf, "gkfs", 4) == 0,
	      "gkfs still works");
	close(g);
	printf("ok\n");
	return 0;
}
