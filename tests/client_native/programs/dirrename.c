/*
 * dirrename.c - rename of directories with entries inside gkfs, run under
 * qemu with libgkfs_intercept.so preloaded by tests/client_native/
 * test_dirrename.py, while forked observers stat both names in a loop:
 * exactly one of the two must exist at every moment.  argv[1]: a gkfs
 * directory.  "ok <check>" per check; failures "FAIL ...".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...) do { \
	if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); \
	               printf(" (errno %d %s)\n", errno, strerror(errno)); fflush(stdout); exit(1); } } while (0)
#define OK(name) do { printf("ok %s\n", name); fflush(stdout); } while (0)

static char top[4096];

static const char *
P(const char *fmt, ...)
{
	static char buf[8][4096];
	static int k;
	char *p = buf[k++ % 8];
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(p, 4096, "%s/", top);
	vsnprintf(p + n, 4096 - n, fmt, ap);
	va_end(ap);
	return p;
}

static void
make_tree(const char *name)
{
	CHECK(mkdir(P("%s", name), 0755) == 0, "mkdir %s", name);
	for (int d = 0; d < 4; d++) {
		CHECK(mkdir(P("%s/d%d", name, d), 0750) == 0, "mkdir");
		CHECK(mkdir(P("%s/d%d/inner", name, d), 0700) == 0, "mkdir inner");
		for (int f = 0; f < 5; f++) {
			int fd = open(P("%s/d%d/f%d", name, d, f), O_CREAT | O_WRONLY, 0644);
			char line[64];
			int n = snprintf(line, sizeof(line), "%s d%d f%d\n", name, d, f);
			CHECK(fd >= 0 && write(fd, line, n) == n && close(fd) == 0, "file");
		}
	}
	CHECK(symlink("d1/f1", P("%s/link", name)) == 0, "symlink");
}

/* Stats a and b (and a file inside each) until killed, while a is renamed
 * to b once.  Reading a then b, a gone and b not there yet means a moment
 * with neither; reading b then a, b there and a still there means a moment
 * with both.  Exit 1 at the first such observation. */
static void
observe(const char *a, const char *b)
{
	struct stat st;
	for (long i = 0;; i++) {
		int ea, eb, fa, fb;
		if (i & 1) {
			ea = stat(P("%s", a), &st) == 0;
			fa = stat(P("%s/d3/f4", a), &st) == 0;
			eb = stat(P("%s", b), &st) == 0;
			fb = stat(P("%s/d3/f4", b), &st) == 0;
		} else {
			eb = stat(P("%s", b), &st) == 0;
			fb = stat(P("%s/d3/f4", b), &st) == 0;
			ea = stat(P("%s", a), &st) == 0;
			fa = stat(P("%s/d3/f4", a), &st) == 0;
		}
		int bad = (i & 1) ? (!ea && !eb) || (!fa && !fb) : (ea && eb) || (fa && fb);
		if (bad) {
			printf("FAIL observer: %s %d %s %d, files %d %d at round %ld (%s first)\n",
			       a, ea, b, eb, fa, fb, i, (i & 1) ? a : b);
			fflush(stdout);
			_exit(1);
		}
	}
}

int
main(int argc, char **argv)
{
	struct stat st;
	char buf[128];
	snprintf(top, sizeof(top), "%s", argv[1]);
	alarm(240);
	make_tree("out.tmp");

	pid_t obs[2];
	for (int i = 0; i < 2; i++)
		if ((obs[i] = fork()) == 0)
			observe("out.tmp", "out");
	usleep(300000);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(rename(P("out.tmp"), P("out")) == 0, "rename out.tmp -> out");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("rename of a 26-entry tree: %.3f s\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	usleep(300000);
	for (int i = 0; i < 2; i++) {
		int wst;
		kill(obs[i], SIGKILL);
		CHECK(waitpid(obs[i], &wst, 0) == obs[i] && WIFSIGNALED(wst), "an observer saw both or neither");
	}
	CHECK(stat(P("out.tmp"), &st) < 0 && errno == ENOENT, "old name gone");
	int fd = open(P("out/d2/f3"), O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 14 && !memcmp(buf, "out.tmp d2 f3\n", 14), "content");
	close(fd);
	CHECK(stat(P("out/d0/inner"), &st) == 0 && (st.st_mode & 0777) == 0700, "modes kept");
	CHECK(readlink(P("out/link"), buf, sizeof(buf)) == 5 && stat(P("out/link"), &st) == 0, "symlink moved");
	DIR *d = opendir(P("out/d1"));
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	CHECK(n == 6, "readdir after the move: %d entries", n);
	d = opendir(P("%s", ""));
	n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += !strcmp(e->d_name, "out") * 1 + !strcmp(e->d_name, "out.tmp") * 100;
	closedir(d);
	CHECK(n == 1, "the parent lists the new name only (%d)", n);
	OK("atomic rename of a populated directory");

	/* onto an empty directory; onto a non-empty one; into itself */
	CHECK(mkdir(P("empty"), 0755) == 0, "mkdir empty");
	CHECK(rename(P("out"), P("empty")) == 0 && stat(P("empty/d3/f4"), &st) == 0, "over an empty directory");
	make_tree("other");
	CHECK(rename(P("other"), P("empty")) < 0 && errno == ENOTEMPTY, "over a non-empty directory");
	CHECK(rename(P("other"), P("other/d0/x")) < 0 && errno == EINVAL, "into itself");
	CHECK(mkdir(P("deep"), 0755) == 0 && rename(P("other"), P("deep/moved")) == 0 &&
	      stat(P("deep/moved/d0/f0"), &st) == 0, "to another parent");
	/* a file open in the moved tree: its data stays (it is keyed by data key) */
	fd = open(P("deep/moved/d0/f1"), O_RDONLY);
	CHECK(fd >= 0 && rename(P("deep"), P("deep2")) == 0, "rename with a file open");
	close(fd);
	fd = open(P("deep2/moved/d0/f1"), O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 12 && !memcmp(buf, "other d0 f1\n", 12), "data after two moves");
	close(fd);
	OK("rename cases");
	printf("done\n");
	return 0;
}
