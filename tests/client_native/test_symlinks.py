"""Symlinks in every path component (issue 12), with ELOOP after 40 links
and links in the middle that lead out of gkfs: programs/symlinks.c under
qemu with libgkfs_intercept.so preloaded."""
from __future__ import annotations


def test_symlinks_in_any_component(gk_cluster, rv_program, run_rv, tmp_path):
    gk_cluster.client.mkdir("/symlinks")
    local = tmp_path / "local"
    local.mkdir()
    cp = run_rv([rv_program("symlinks"), f"{gk_cluster.mount}/symlinks", str(local)])
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    assert (local / "made-by-gkfs-link").read_bytes() == b"x" and (local / "dir").is_dir()
    c = gk_cluster.client
    assert sorted(c.listdir("/symlinks/real")) == ["plain", "sub"]
    assert c.listdir("/symlinks/real/sub") == []
