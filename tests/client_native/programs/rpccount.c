/* rpccount.c DIR N: N times open(DIR/fI, O_CREAT|O_EXCL|O_WRONLY), write
 * 100 bytes, close; then stat each; then open each O_RDONLY, read 4096
 * bytes (gets the 100), close.  The test counts the daemons' requests
 * around it (docs/performance.md, RPCs per system call). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	char path[4096], buf[100] = {0}, back[4096];
	struct stat st;
	int n;

	if (argc != 3)
		return 2;
	n = atoi(argv[2]);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
		int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0 || write(fd, buf, sizeof(buf)) != sizeof(buf) || close(fd)) {
			perror(path);
			return 1;
		}
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
		if (stat(path, &st) || st.st_size != sizeof(buf)) {
			perror(path);
			return 1;
		}
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
		int fd = open(path, O_RDONLY);
		memset(back, 0xff, sizeof(back));
		if (fd < 0 || read(fd, back, sizeof(back)) != sizeof(buf) || memcmp(back, buf, sizeof(buf)) ||
		    close(fd)) {
			perror(path);
			return 1;
		}
	}
	puts("done");
	return 0;
}
