"""An MPI program run the user's way, LD_PRELOAD=libgkfs_intercept.so
mpirun -np 2 ./mpi_io: the preload sits in mpirun and its process manager
(prterun), whose own files (session dir under TMPDIR, outside gkfs) must keep
working, and reaches every rank. Each rank writes and reads its own gkfs file
and one block of a shared file; every rank reads all of the shared file. Then
the same through MPI-IO (Open MPI's OMPIO): collective write_at_all of one
block per rank into mpiio.dat, read_at_all of every block on every rank."""
from __future__ import annotations

from e2e_harness import LocalCluster, Riscv64Preload

BLOCK = 786_445  # 12 chunks of 64 KiB and a bit: blocks straddle chunk borders
RANKS = 2


def pattern(writer: int, n: int) -> bytes:
    """The bytes mpi_io.c's pattern() gives rank ``writer``."""
    m = (1 << 64) - 1
    k = ((writer + 1) * 40503) & m
    out = bytearray(n)
    for i in range(n):
        x = (i * 2654435761 + k) & m
        out[i] = (x ^ (x >> 13) ^ (x >> 29)) & 0xFF
    return bytes(out)


def test_mpirun_with_preload(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local, programs):
    r = rv.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(RANKS),
                str(programs / "mpi_io"), gkdir, str(BLOCK), str(local), "mpiio"]).ok()
    assert "mpi_io: MPI-IO ok" in r.out, r.describe()
    assert f"mpi_io: {RANKS} ranks ok, {2 * BLOCK * RANKS * (1 + RANKS)} bytes checked" in r.out, r.describe()
    for k in range(RANKS):
        assert f"rank {k} ok" in r.out, r.describe()
    assert gkfs.listdir(gkdir) == sorted(["mpiio.dat", "shared.dat"] + [f"rank-{k}.dat" for k in range(RANKS)])
    shared = gkfs.read(f"{gkdir}/shared.dat")
    mpiio = gkfs.read(f"{gkdir}/mpiio.dat")
    assert len(shared) == RANKS * BLOCK and len(mpiio) == RANKS * BLOCK
    for k in range(RANKS):
        want = pattern(k, BLOCK)
        assert gkfs.read(f"{gkdir}/rank-{k}.dat") == want, f"rank-{k}.dat differs"
        assert shared[k * BLOCK:(k + 1) * BLOCK] == want, f"shared.dat block {k} differs"
        assert mpiio[k * BLOCK:(k + 1) * BLOCK] == want, f"mpiio.dat block {k} differs"
        assert (local / f"local-{k}.txt").read_text() == f"rank {k} of {RANKS}\n"
    gkfs.assert_spread([f"{gkdir}/shared.dat"], at_least=3)
    gkfs.assert_spread([f"{gkdir}/mpiio.dat"], at_least=2)
