"""The preload's readdir stat cache (issue 9): Debian's riscv64 `ls -l`
under qemu costs no stat RPC per file; the process's own changes are seen
at once, another client's after the TTL; LIBGKFS_STAT_CACHE_TTL_MS=0 turns
it off.  Counted with the daemons' op counters."""
from __future__ import annotations

import os
import subprocess
import time

N = 60


def _ls_l(gk_cluster, run_rv, sysroot, d: str, env=None) -> tuple[dict[str, int], list[str]]:
    c = gk_cluster.client
    before = c.op_totals()
    cp = run_rv([sysroot / "usr/bin/ls", "-l", f"{gk_cluster.mount}{d}"], extra_env=env)
    after = c.op_totals()
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")
    lines = [ln for ln in cp.stdout.decode().splitlines() if not ln.startswith("total")]
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}, lines


def test_ls_l_costs_no_stat_per_file(gk_cluster, run_rv, sysroot):
    c = gk_cluster.client
    c.mkdir("/lsl")
    for i in range(N):
        c.write_file(f"/lsl/f{i:03d}", b"z" * i)
    # a long TTL: no flake when a loaded machine stalls qemu (default: 1 s)
    d, lines = _ls_l(gk_cluster, run_rv, sysroot, "/lsl", {"LIBGKFS_STAT_CACHE_TTL_MS": "30000"})
    assert len(lines) == N
    for i, ln in enumerate(lines):
        f = ln.split()
        assert f[-1] == f"f{i:03d}" and int(f[4]) == i and f[0] == "-rw-r--r--", ln
    n_hosts = len(c.hosts)
    assert d.get("get_dirents") == n_hosts
    # the directory's own stats (ls, opendir), never one per file
    assert d.get("stat", 0) <= 4, d
    # off: one stat per file again
    d, lines = _ls_l(gk_cluster, run_rv, sysroot, "/lsl", {"LIBGKFS_STAT_CACHE_TTL_MS": "0"})
    assert len(lines) == N
    assert d.get("stat", 0) >= N, d


def test_own_changes_seen_at_once(gk_cluster, run_rv, rv_program):
    c = gk_cluster.client
    c.mkdir("/own")
    for name in "abcdefg":
        c.write_file(f"/own/{name}", b"x" * 10 if name in "ce" else b"")
    cp = run_rv([rv_program("statcache"), "own", f"{gk_cluster.mount}/own"],
                extra_env={"LIBGKFS_STAT_CACHE_TTL_MS": "60000"})
    assert cp.returncode == 0 and cp.stdout.decode().strip() == "ok", cp.stderr.decode(errors="replace")


def test_other_clients_changes_seen_after_ttl(gk_cluster, sysroot, preload, rv_program):
    """The preloaded process listed the directory; this test (another
    client) removes one file and grows another; after the TTL the process's
    stats see both."""
    c = gk_cluster.client
    c.mkdir("/ttl")
    c.write_file("/ttl/gone", b"1")
    c.write_file("/ttl/grown", b"1")
    env = {"PATH": f"{sysroot}/usr/bin", "QEMU_LD_PREFIX": str(sysroot), "LC_ALL": "C",
           "LIBGKFS_HOSTS_FILE": str(gk_cluster.hosts_file), "LIBGKFS_RPC_TIMEOUT_MS": "20000",
           "LIBGKFS_LOG": "errors", "LD_PRELOAD": str(preload), "LIBGKFS_STAT_CACHE_TTL_MS": "300"}
    p = subprocess.Popen(["/usr/bin/qemu-riscv64-static", str(rv_program("statcache")), "wait",
                          f"{gk_cluster.mount}/ttl", "400"],
                         env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline().decode().strip() == "listed"
        c.unlink("/ttl/gone")
        fd = c.open("/ttl/grown", os.O_WRONLY)
        c.pwrite(fd, b"y" * 500, 0)
        c.close(fd)
        t0 = time.monotonic()
        out, err = p.communicate(b"go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err.decode(errors="replace")
    assert time.monotonic() - t0 >= 0.4
    assert sorted(out.decode().split("\n")[:-1]) == ["gone -", "grown 500"], out


def test_record_from_a_member_that_does_not_own_the_path_is_not_used(gk_cluster, run_rv, sysroot):
    """A record left on a member that does not own its path (an older
    placement) is listed, but stat asks the owner: `ls -l` reports it as
    missing, as without the cache."""
    from gkfs_client import distribution
    c = gk_cluster.client
    c.mkdir("/misplaced")
    c.write_file("/misplaced/a", b"x")
    bad = "/misplaced/0bad"
    n = len(c.hosts)
    other = (distribution.metadata_owner(bad, n) + 1) % n
    c._one(other, "insert", {"path": bad, "record": c.stat_record("/misplaced/a"), "from": "/misplaced/a"})
    cp = run_rv([sysroot / "usr/bin/ls", "-l", f"{gk_cluster.mount}/misplaced"])
    out, err = cp.stdout.decode(), cp.stderr.decode(errors="replace")
    assert cp.returncode == 1 and "cannot access" in err and "0bad" in err, (out, err)
    lines = [ln for ln in out.splitlines() if not ln.startswith("total")]
    assert lines[0].startswith("-?????????") and lines[0].endswith(" 0bad") and lines[1].endswith(" a"), out


def test_a_bad_cache_setting_is_reported_not_silently_replaced(gk_cluster, run_rv, sysroot):
    """A value that is not a whole number gets a warning on stderr naming the
    variable and the default used, like the Python client's EINVAL tells."""
    c = gk_cluster.client
    c.mkdir("/badenv")
    c.write_file("/badenv/f", b"x")
    for name in ("LIBGKFS_STAT_CACHE_TTL_MS", "LIBGKFS_STAT_CACHE_ENTRIES"):
        cp = run_rv([sysroot / "usr/bin/ls", "-l", f"{gk_cluster.mount}/badenv"], extra_env={name: "1s"})
        err = cp.stderr.decode(errors="replace")
        assert cp.returncode == 0, err
        assert name in err and "1s" in err and "default" in err, err
