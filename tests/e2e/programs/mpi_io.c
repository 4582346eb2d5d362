/* MPI end-to-end program for gkfs: every rank writes and reads back its own
 * file, and all ranks write disjoint blocks of one shared file which every
 * rank then reads whole and checks. Plain POSIX I/O on the paths given, so
 * under LD_PRELOAD=libgkfs_intercept.so it goes through the gkfs hook.
 *
 *   mpi_io DIR [BLOCK_BYTES] [LOCAL_DIR] [mpiio]
 *
 * DIR        where rank-<r>.dat and shared.dat go (a gkfs path in the tests)
 * BLOCK      bytes per rank (default 786445: crosses 512 KiB chunk borders)
 * LOCAL_DIR  optional directory outside gkfs: each rank also writes and reads
 *            local-<r>.txt there, proving other paths keep working in the
 *            same process.
 * mpiio      also write DIR/mpiio.dat collectively with MPI-IO
 *            (MPI_File_write_at_all, one block per rank) and read it all
 *            back with MPI_File_read_at_all on every rank.
 *
 * Byte i of rank r's data is pattern(r, i), so any misplaced or stale byte
 * shows. Prints one "rank R ok ..." line per rank; exits non-zero (after
 * MPI_Abort) on the first mismatch, naming the file, offset and bytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rank, nranks;

static void die(const char *what, const char *path)
{
    fprintf(stderr, "mpi_io: rank %d: %s %s: %s\n", rank, what, path, strerror(errno));
    MPI_Abort(MPI_COMM_WORLD, 2);
    exit(2);
}

/* Distinct per writer and per position (not periodic in any power of two). */
static unsigned char pattern(int writer, size_t i)
{
    uint64_t x = (uint64_t)i * 2654435761u + (uint64_t)(writer + 1) * 40503u;
    return (unsigned char)(x ^ (x >> 13) ^ (x >> 29));
}

static void fill(unsigned char *buf, size_t n, int writer)
{
    for (size_t i = 0; i < n; i++) buf[i] = pattern(writer, i);
}

static void check(const unsigned char *buf, size_t n, int writer, const char *path, size_t base)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != pattern(writer, i)) {
            fprintf(stderr, "mpi_io: rank %d: %s: byte %zu is 0x%02x, expected 0x%02x (writer %d)\n",
                    rank, path, base + i, buf[i], pattern(writer, i), writer);
            MPI_Abort(MPI_COMM_WORLD, 3);
            exit(3);
        }
    }
}

static void write_all(int fd, const unsigned char *buf, size_t n, off_t off, const char *path)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, buf + done, n - done, off + (off_t)done);
        if (w < 0) { if (errno == EINTR) continue; die("pwrite", path); }
        if (w == 0) { errno = EIO; die("pwrite returned 0 on", path); }
        done += (size_t)w;
    }
}

static void read_all(int fd, unsigned char *buf, size_t n, off_t off, const char *path)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, off + (off_t)done);
        if (r < 0) { if (errno == EINTR) continue; die("pread", path); }
        if (r == 0) {
            fprintf(stderr, "mpi_io: rank %d: %s: short read, %zu of %zu bytes at %lld\n",
                    rank, path, done, n, (long long)off);
            MPI_Abort(MPI_COMM_WORLD, 4);
            exit(4);
        }
        done += (size_t)r;
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: mpi_io DIR [BLOCK_BYTES] [LOCAL_DIR]\n");
        MPI_Finalize();
        return 1;
    }
    const char *dir = argv[1];
    size_t block = argc > 2 ? strtoull(argv[2], NULL, 0) : 786445;
    const char *local = argc > 3 ? argv[3] : NULL;
    char own[4096], shared[4096], loc[4096];
    snprintf(own, sizeof own, "%s/rank-%d.dat", dir, rank);
    snprintf(shared, sizeof shared, "%s/shared.dat", dir);

    unsigned char *buf = malloc(block), *back = malloc(block);
    if (!buf || !back) die("malloc", "");
    fill(buf, block, rank);

    /* Own file: create, write, fsync, close; reopen, fstat, read back. */
    int fd = open(own, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) die("open for writing", own);
    write_all(fd, buf, block, 0, own);
    if (fsync(fd) != 0) die("fsync", own);
    if (close(fd) != 0) die("close", own);
    fd = open(own, O_RDONLY);
    if (fd < 0) die("open for reading", own);
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat", own);
    if ((size_t)st.st_size != block) {
        fprintf(stderr, "mpi_io: rank %d: %s: size %lld, expected %zu\n", rank, own,
                (long long)st.st_size, block);
        MPI_Abort(MPI_COMM_WORLD, 5);
    }
    memset(back, 0, block);
    read_all(fd, back, block, 0, own);
    check(back, block, rank, own, 0);
    close(fd);

    /* Shared file: rank 0 creates it, everybody writes its own block. */
    if (rank == 0) {
        fd = open(shared, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0) die("create", shared);
        close(fd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    fd = open(shared, O_WRONLY);
    if (fd < 0) die("open shared for writing", shared);
    write_all(fd, buf, block, (off_t)rank * (off_t)block, shared);
    if (close(fd) != 0) die("close", shared);
    MPI_Barrier(MPI_COMM_WORLD);

    /* Every rank reads every block of the shared file. */
    fd = open(shared, O_RDONLY);
    if (fd < 0) die("open shared for reading", shared);
    if (fstat(fd, &st) != 0) die("fstat", shared);
    if ((size_t)st.st_size != block * (size_t)nranks) {
        fprintf(stderr, "mpi_io: rank %d: %s: size %lld, expected %zu\n", rank, shared,
                (long long)st.st_size, block * (size_t)nranks);
        MPI_Abort(MPI_COMM_WORLD, 5);
    }
    for (int w = 0; w < nranks; w++) {
        memset(back, 0, block);
        read_all(fd, back, block, (off_t)w * (off_t)block, shared);
        check(back, block, w, shared, (size_t)w * block);
    }
    close(fd);

    if (local) {
        snprintf(loc, sizeof loc, "%s/local-%d.txt", local, rank);
        FILE *f = fopen(loc, "w");
        if (!f) die("fopen", loc);
        fprintf(f, "rank %d of %d\n", rank, nranks);
        if (fclose(f) != 0) die("fclose", loc);
        char line[64] = {0}, want[64];
        snprintf(want, sizeof want, "rank %d of %d\n", rank, nranks);
        f = fopen(loc, "r");
        if (!f || !fgets(line, sizeof line, f)) die("read back", loc);
        fclose(f);
        if (strcmp(line, want) != 0) {
            fprintf(stderr, "mpi_io: rank %d: %s holds %s\n", rank, loc, line);
            MPI_Abort(MPI_COMM_WORLD, 6);
        }
    }

    long long mpiio_bytes = 0;
    if (argc > 4 && strcmp(argv[4], "mpiio") == 0) {
        char mp[4096];
        MPI_File fh;
        MPI_Status status;
        int rc, count;
        snprintf(mp, sizeof mp, "%s/mpiio.dat", dir);
        rc = MPI_File_open(MPI_COMM_WORLD, mp, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING]; int len;
            MPI_Error_string(rc, msg, &len);
            fprintf(stderr, "mpi_io: rank %d: MPI_File_open %s: %s\n", rank, mp, msg);
            MPI_Abort(MPI_COMM_WORLD, 7);
        }
        rc = MPI_File_write_at_all(fh, (MPI_Offset)rank * (MPI_Offset)block, buf, (int)block, MPI_BYTE, &status);
        MPI_Get_count(&status, MPI_BYTE, &count);
        if (rc != MPI_SUCCESS || (size_t)count != block) {
            fprintf(stderr, "mpi_io: rank %d: MPI_File_write_at_all %s: rc %d, %d bytes\n", rank, mp, rc, count);
            MPI_Abort(MPI_COMM_WORLD, 7);
        }
        MPI_File_sync(fh);
        MPI_Barrier(MPI_COMM_WORLD);
        for (int w = 0; w < nranks; w++) {
            memset(back, 0, block);
            rc = MPI_File_read_at_all(fh, (MPI_Offset)w * (MPI_Offset)block, back, (int)block, MPI_BYTE, &status);
            MPI_Get_count(&status, MPI_BYTE, &count);
            if (rc != MPI_SUCCESS || (size_t)count != block) {
                fprintf(stderr, "mpi_io: rank %d: MPI_File_read_at_all %s block %d: rc %d, %d bytes\n",
                        rank, mp, w, rc, count);
                MPI_Abort(MPI_COMM_WORLD, 7);
            }
            check(back, block, w, mp, (size_t)w * block);
        }
        MPI_File_close(&fh);
        mpiio_bytes = (long long)block * (1 + nranks);
        if (rank == 0) printf("mpi_io: MPI-IO ok\n");
    }

    long long total = 0, mine = (long long)block * (1 + nranks) + mpiio_bytes;
    MPI_Reduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    printf("rank %d ok own=%s shared=%s block=%zu\n", rank, own, shared, block);
    fflush(stdout);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) printf("mpi_io: %d ranks ok, %lld bytes checked\n", nranks, total);
    free(buf);
    free(back);
    MPI_Finalize();
    return 0;
}
