/* Threaded end-to-end program for gkfs: T threads at once, each writing and
 * reading back its own file and its own disjoint block of one shared file,
 * while also touching a path outside gkfs. The main thread then checks the
 * whole shared file. Under LD_PRELOAD=libgkfs_intercept.so every thread's
 * calls go through the hook concurrently (the core holds no global lock).
 *
 *   threads_io DIR [THREADS] [BLOCK_BYTES] [LOCAL_DIR]
 *
 * Exits 0 and prints "threads_io: T threads ok, N bytes checked" on success;
 * on the first error prints the thread, call, path and errno, exits non-zero. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir, *local;
static size_t block;
static int nthreads;

struct job { int id; int failed; char msg[6144]; };

static unsigned char pattern(int writer, size_t i)
{
    uint64_t x = (uint64_t)i * 2246822519u + (uint64_t)(writer + 7) * 3266489917u;
    return (unsigned char)(x ^ (x >> 11) ^ (x >> 27));
}

#define FAIL(j, ...) do { snprintf((j)->msg, sizeof (j)->msg, __VA_ARGS__); (j)->failed = 1; return NULL; } while (0)

static int io_all(int fd, unsigned char *buf, size_t n, off_t off, int writing)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = writing ? pwrite(fd, buf + done, n - done, off + (off_t)done)
                            : pread(fd, buf + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { if (r == 0) errno = EIO; return -1; }
        done += (size_t)r;
    }
    return 0;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    char own[4096], shared[4096], loc[4096];
    snprintf(own, sizeof own, "%s/thread-%d.dat", dir, j->id);
    snprintf(shared, sizeof shared, "%s/shared.dat", dir);
    unsigned char *buf = malloc(block), *back = malloc(block);
    if (!buf || !back) FAIL(j, "malloc");
    for (size_t i = 0; i < block; i++) buf[i] = pattern(j->id, i);

    /* Own file through write() in pieces (offset advanced by the kernel or
     * the hook), read back through read() after lseek. */
    int fd = open(own, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) FAIL(j, "open %s: %s", own, strerror(errno));
    size_t piece = 65536 + 3 * (size_t)j->id, done = 0;
    while (done < block) {
        size_t n = block - done < piece ? block - done : piece;
        ssize_t w = write(fd, buf + done, n);
        if (w <= 0) FAIL(j, "write %s at %zu: %s", own, done, strerror(errno));
        done += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_CUR) != (off_t)block) FAIL(j, "lseek(CUR) %s != %zu", own, block);
    if (lseek(fd, 0, SEEK_SET) != 0) FAIL(j, "lseek(SET) %s: %s", own, strerror(errno));
    memset(back, 0, block);
    done = 0;
    while (done < block) {
        ssize_t r = read(fd, back + done, block - done);
        if (r <= 0) FAIL(j, "read %s at %zu: %s", own, done, r ? strerror(errno) : "EOF");
        done += (size_t)r;
    }
    if (memcmp(buf, back, block) != 0) {
        size_t at = 0, end;
        while (buf[at] == back[at]) at++;
        for (end = at; end < block && buf[end] != back[end]; end++) ;
        int from = -1;  /* another thread's bytes here? */
        for (int w = 0; w < nthreads && from < 0; w++)
            if (w != j->id && back[at] == pattern(w, at) && back[at + 1] == pattern(w, at + 1)) from = w;
        FAIL(j, "%s: data read back differs from byte %zu to %zu (got 0x%02x%02x, expected 0x%02x%02x%s%d)",
             own, at, end, back[at], back[at + 1], buf[at], buf[at + 1],
             from >= 0 ? ", matches thread " : ", zeros/other: ", from);
    }
    close(fd);

    /* Disjoint block of the shared file (created by main). */
    fd = open(shared, O_WRONLY);
    if (fd < 0) FAIL(j, "open %s: %s", shared, strerror(errno));
    if (io_all(fd, buf, block, (off_t)j->id * (off_t)block, 1)) FAIL(j, "pwrite %s: %s", shared, strerror(errno));
    close(fd);

    /* A path outside gkfs, in the same thread. */
    if (local) {
        snprintf(loc, sizeof loc, "%s/thread-%d.txt", local, j->id);
        fd = open(loc, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0 || write(fd, "local\n", 6) != 6 || close(fd) != 0)
            FAIL(j, "local file %s: %s", loc, strerror(errno));
        struct stat st;
        if (stat(loc, &st) != 0 || st.st_size != 6) FAIL(j, "stat %s", loc);
    }
    free(buf);
    free(back);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: threads_io DIR [THREADS] [BLOCK] [LOCAL_DIR]\n"); return 1; }
    dir = argv[1];
    nthreads = argc > 2 ? atoi(argv[2]) : 8;
    block = argc > 3 ? strtoull(argv[3], NULL, 0) : 300007;
    local = argc > 4 ? argv[4] : NULL;
    char shared[4096];
    snprintf(shared, sizeof shared, "%s/shared.dat", dir);
    int fd = open(shared, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) { fprintf(stderr, "threads_io: create %s: %s\n", shared, strerror(errno)); return 2; }
    close(fd);

    pthread_t *tid = calloc(nthreads, sizeof *tid);
    struct job *jobs = calloc(nthreads, sizeof *jobs);
    for (int i = 0; i < nthreads; i++) {
        jobs[i].id = i;
        if (pthread_create(&tid[i], NULL, worker, &jobs[i]) != 0) { perror("pthread_create"); return 2; }
    }
    int bad = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        if (jobs[i].failed) { fprintf(stderr, "threads_io: thread %d: %s\n", i, jobs[i].msg); bad = 1; }
    }
    if (bad) return 3;

    fd = open(shared, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) { fprintf(stderr, "threads_io: reopen %s: %s\n", shared, strerror(errno)); return 4; }
    if ((size_t)st.st_size != block * (size_t)nthreads) {
        fprintf(stderr, "threads_io: %s size %lld, expected %zu\n", shared, (long long)st.st_size, block * nthreads);
        return 4;
    }
    unsigned char *back = malloc(block);
    for (int w = 0; w < nthreads; w++) {
        if (io_all(fd, back, block, (off_t)w * (off_t)block, 0)) {
            fprintf(stderr, "threads_io: pread %s block %d: %s\n", shared, w, strerror(errno));
            return 4;
        }
        for (size_t i = 0; i < block; i++)
            if (back[i] != pattern(w, i)) {
                fprintf(stderr, "threads_io: %s byte %zu is 0x%02x, expected 0x%02x\n",
                        shared, w * block + i, back[i], pattern(w, i));
                return 5;
            }
    }
    close(fd);
    printf("threads_io: %d threads ok, %zu bytes checked\n", nthreads, block * (size_t)nthreads * 3);
    return 0;
}
