/* File system micro-benchmark, built for riscv64 and run unchanged on the
 * local file system, with the pass-through preload, and through gkfs
 * (bench/e2e_bench.py). Prints one JSON object with seconds per phase.
 *
 *   fsbench DIR FILES MIB [IO_KIB]
 *
 * Phases: create FILES empty files (open O_CREAT|O_EXCL + close), stat each,
 * unlink each; write MIB MiB sequentially in IO_KIB pieces (default 1024)
 * and fsync, then read it back and check every byte. DIR must exist; the
 * program works in DIR/fsbench-<pid> and removes it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *path)
{
    fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(errno));
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: fsbench DIR FILES MIB [IO_KIB]\n"); return 1; }
    long files = atol(argv[2]), mib = atol(argv[3]);
    size_t io = (argc > 4 ? (size_t)atol(argv[4]) : 1024) * 1024;
    char work[4096], path[4200];
    snprintf(work, sizeof work, "%s/fsbench-%d", argv[1], (int)getpid());
    if (mkdir(work, 0755) != 0) die("mkdir", work);

    double t0 = now();
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", work, i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) die("create", path);
        close(fd);
    }
    double t1 = now();
    struct stat st;
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", work, i);
        if (stat(path, &st) != 0) die("stat", path);
    }
    double t2 = now();
    for (long i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/f%06ld", work, i);
        if (unlink(path) != 0) die("unlink", path);
    }
    double t3 = now();

    unsigned char *buf = malloc(io), *back = malloc(io);
    for (size_t i = 0; i < io; i++) buf[i] = (unsigned char)(i * 131 + (i >> 9));
    snprintf(path, sizeof path, "%s/data", work);
    size_t total = (size_t)mib << 20;
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) die("create", path);
    double t4 = now();
    for (size_t done = 0; done < total;) {
        size_t n = total - done < io ? total - done : io;
        ssize_t w = write(fd, buf, n);
        if (w <= 0) die("write", path);
        done += (size_t)w;
    }
    if (fsync(fd) != 0) die("fsync", path);
    close(fd);
    double t5 = now();
    fd = open(path, O_RDONLY);
    if (fd < 0) die("open", path);
    for (size_t done = 0; done < total;) {
        size_t n = total - done < io ? total - done : io;
        for (size_t got = 0; got < n;) {   /* a short read continues the block */
            ssize_t r = read(fd, back + got, n - got);
            if (r <= 0) { if (r == 0) errno = EIO; die("read", path); }
            got += (size_t)r;
        }
        if (memcmp(back, buf, n) != 0) { errno = EIO; die("data differs in", path); }
        done += n;
    }
    close(fd);
    double t6 = now();
    if (unlink(path) != 0) die("unlink", path);
    if (rmdir(work) != 0) die("rmdir", work);
    printf("{\"files\": %ld, \"mib\": %ld, \"create_s\": %.6f, \"stat_s\": %.6f, \"remove_s\": %.6f, "
           "\"write_s\": %.6f, \"read_s\": %.6f}\n",
           files, mib, t1 - t0, t2 - t1, t3 - t2, t5 - t4, t6 - t5);
    return 0;
}
