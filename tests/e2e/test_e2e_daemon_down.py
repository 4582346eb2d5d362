"""A daemon that dies under a running job: the preloaded program gets EIO
after the bounded RPC wait (LIBGKFS_RPC_TIMEOUT_MS), never a hang, and local
paths keep working in the same process. Uses its own 3-daemon cluster."""
from __future__ import annotations

import os
import signal
import time

import pytest

from e2e_harness import LocalCluster, Riscv64Preload

TIMEOUT_MS = 2000


@pytest.fixture
def small_cluster(tmp_path):
    c = LocalCluster(tmp_path / "cluster", n=3, mount="/gkfs-e2e-down").start()
    yield c
    # The killed daemon's line stays in the hosts file; stop the others.
    c.ctl("cluster", "stop")


def test_dead_daemon_gives_eio_not_hang(small_cluster: LocalCluster, sysroot, preload_lib, tmp_path):
    c = small_cluster
    work, logs = tmp_path / "work", tmp_path / "logs"
    work.mkdir()
    logs.mkdir()
    rv = Riscv64Preload(sysroot, preload_lib, c, work, logs)
    data = os.urandom(2 * 1024 * 1024)  # 32 chunks of 64 KiB: every daemon holds some
    c.client.mkdir("/d")
    c.client.write_file("/d/f.bin", data)
    holders = c.chunk_holders(f"{c.mount}/d/f.bin")
    assert holders == {0, 1, 2}, holders
    r = rv.run(["sha256sum", f"{c.mount}/d/f.bin"]).ok()  # works while all are up

    victim = 1
    pid = c.client.status()[victim]["pid"]
    os.kill(pid, signal.SIGKILL)
    (work / "local.txt").write_text("still here\n")
    t0 = time.monotonic()
    r = rv.run(["cat", f"{c.mount}/d/f.bin", str(work / "local.txt")],
               env={"LIBGKFS_RPC_TIMEOUT_MS": str(TIMEOUT_MS)}, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.describe()
    assert "Input/output error" in r.err, r.describe()
    assert r.stdout.endswith(b"still here\n"), "the local file after the failed gkfs one must still be read"
    assert took < 30, f"EIO only after {took:.1f} s with a {TIMEOUT_MS} ms RPC timeout"
