/* localstream.c DIR SIZE...: for each SIZE writes DIR/f<SIZE> with a
 * pattern (one write), reads it back (one read) and compares; then a
 * forked child does the same on DIR/c<SIZE>.  Each process then lists the
 * sockets among its descriptors, one line each:
 *   <who> unix <fd> <peer name as hex>   (a UNIX socket's peer)
 *   <who> tcp <fd> <port>                (a TCP socket's peer)
 * and tries close() on every UNIX one (the client's own: refused, EBADF),
 * and repeats its I/O after that.  Prints "done" when everything matched.
 * tests/client_native/test_local_stream.py reads the lines: which
 * transport the preload's client used, and that a child never kept its
 * parent's streams. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char
pat(size_t i, unsigned seed)
{
	return (unsigned char)(i * 131 + i / 65536 + seed);
}

static int
io(const char *dir, const char *prefix, char **sizes, int n, unsigned seed)
{
	for (int k = 0; k < n; k++) {
		size_t size = strtoul(sizes[k], NULL, 10);
		char path[4096];
		unsigned char *buf = malloc(size + 1), *back = malloc(size + 1);
		snprintf(path, sizeof(path), "%s/%s%s", dir, prefix, sizes[k]);
		for (size_t i = 0; i < size; i++)
			buf[i] = pat(i, seed);
		memset(back, 0, size + 1);
		int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
		if (fd < 0 || write(fd, buf, size) != (ssize_t)size) {
			perror(path);
			return 1;
		}
		ssize_t got = pread(fd, back, size + 1, 0);
		if (got != (ssize_t)size || memcmp(buf, back, size) || close(fd)) {
			fprintf(stderr, "%s: read back %zd of %zu bytes%s\n", path, got, size,
			        got == (ssize_t)size ? ", different" : "");
			return 1;
		}
		free(buf);
		free(back);
	}
	return 0;
}

static int
list_sockets(const char *who)
{
	int bad = 0;

	for (int fd = 0; fd < 4096; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
			continue;
		if (ss.ss_family == AF_UNIX) {
			struct sockaddr_un *un = (struct sockaddr_un *)&ss;
			size_t n = len - offsetof(struct sockaddr_un, sun_path);
			printf("%s unix %d ", who, fd);
			for (size_t i = 0; i < n; i++)
				printf("%02x", (unsigned char)un->sun_path[i]);
			printf("\n");
			if (close(fd) == 0 || errno != EBADF) {
				fprintf(stderr, "%s: close(%d) of the client's stream was not refused\n",
				        who, fd);
				bad = 1;
			}
		} else if (ss.ss_family == AF_INET) {
			printf("%s tcp %d %u\n", who, fd, ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	fflush(stdout);
	return bad;
}

int
main(int argc, char **argv)
{
	int status;

	if (argc < 3)
		return 2;
	if (io(argv[1], "f", argv + 2, argc - 2, 0))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		if (io(argv[1], "c", argv + 2, argc - 2, 7) || list_sockets("child") ||
		    io(argv[1], "c", argv + 2, argc - 2, 9))
			_exit(1);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "child failed\n");
		return 1;
	}
	/* the parent's streams are untouched by the child's exit */
	if (list_sockets("parent") || io(argv[1], "f", argv + 2, argc - 2, 3))
		return 1;
	puts("done");
	return 0;
}
