"""Atomic rename of populated directories (issue 12): programs/dirrename.c
renames a tree of 4 directories, 20 files and a symlink while two forked
observers stat both names in a loop (exactly one must exist, every
moment), then over an empty directory, onto a non-empty one (ENOTEMPTY),
into itself (EINVAL) and to another parent. The files' data never moves:
the chunk files on the daemons are the same before and after."""
from __future__ import annotations


def _chunk_files(gk_cluster) -> set[str]:
    root = gk_cluster.base / "root"
    return {str(p.relative_to(root)) for p in root.glob("daemon-*/chunks/*/*")}


def test_rename_populated_directory(gk_cluster, rv_program, run_rv, sysroot):
    gk_cluster.client.mkdir("/dirrename")
    cp = run_rv([rv_program("dirrename"), f"{gk_cluster.mount}/dirrename"], timeout=300)
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    c = gk_cluster.client
    assert sorted(c.listdir("/dirrename")) == ["deep2", "empty"]
    assert sorted(c.listdir("/dirrename/empty")) == ["d0", "d1", "d2", "d3", "link"]
    assert c.read_file("/dirrename/empty/d3/f4") == b"out.tmp d3 f4\n"
    before = _chunk_files(gk_cluster)
    cp = run_rv([sysroot / "usr/bin/mv", f"{gk_cluster.mount}/dirrename/empty",
                 f"{gk_cluster.mount}/dirrename/final"])
    assert cp.returncode == 0, cp.stderr
    assert _chunk_files(gk_cluster) == before          # no data moved: same chunk files
    assert c.read_file("/dirrename/final/d3/f4") == b"out.tmp d3 f4\n"
