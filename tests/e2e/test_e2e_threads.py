"""A threaded riscv64 program (tests/e2e/programs/threads_io.c): 8 threads
at once write and read back their own gkfs files and disjoint blocks of one
shared file, and local files; the data is checked through the Client."""
from __future__ import annotations

from e2e_harness import LocalCluster, Riscv64Preload

THREADS = 8
BLOCK = 200_003


def pattern(writer: int, n: int) -> bytes:
    """The bytes threads_io.c's pattern() gives writer ``writer``."""
    m = (1 << 64) - 1
    k = ((writer + 7) * 3266489917) & m
    out = bytearray(n)
    for i in range(n):
        x = (i * 2246822519 + k) & m
        out[i] = (x ^ (x >> 11) ^ (x >> 27)) & 0xFF
    return bytes(out)


def test_threads(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local, programs):
    r = rv.run([str(programs / "threads_io"), gkdir, str(THREADS), str(BLOCK), str(local)]).ok()
    assert r.out.strip() == f"threads_io: {THREADS} threads ok, {BLOCK * THREADS * 3} bytes checked", r.describe()
    shared = gkfs.read(f"{gkdir}/shared.dat")
    assert len(shared) == THREADS * BLOCK
    for t in range(THREADS):
        want = pattern(t, BLOCK)
        assert gkfs.read(f"{gkdir}/thread-{t}.dat") == want, f"thread-{t}.dat differs"
        assert shared[t * BLOCK:(t + 1) * BLOCK] == want, f"shared.dat block {t} differs"
        assert (local / f"thread-{t}.txt").read_text() == "local\n"
    assert gkfs.listdir(gkdir) == sorted(["shared.dat"] + [f"thread-{t}.dat" for t in range(THREADS)])
    gkfs.assert_spread([f"{gkdir}/shared.dat"], at_least=3)
