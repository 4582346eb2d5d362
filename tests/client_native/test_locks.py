"""Locks that really lock (issue 12): a riscv64 program (programs/locks.c)
forks and contends for fcntl record locks, OFD locks and flock on a gkfs
file with libgkfs_intercept.so preloaded; a SIGKILLed holder's locks are
released by its daemon."""
from __future__ import annotations


def test_locks_between_processes(gk_cluster, rv_program, run_rv):
    gk_cluster.client.mkdir("/locks")
    cp = run_rv([rv_program("locks"), f"{gk_cluster.mount}/locks"], timeout=120)
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    for check in ("fcntl record locks", "dead holder", "OFD locks", "flock"):
        assert f"ok {check}\n" in out
