"""The daemon's request path (issue 9): metadata answered where it is
received, and a daemon that keeps reading requests while its workers wait
on other daemons.

With security on, a create in a directory whose record lives on another
daemon makes the receiving daemon ask that one (daemon.peer). Daemons used
to read requests only while a worker was idle: when every worker of two
daemons waited on the other's answer, neither read the peer requests that
would have answered them, and every waiting request (and a plain stat from
anybody else) hung until the peer timeout.
"""
from __future__ import annotations

import os
import threading
import time

from gkfs_client import distribution
from gkfs_client.client import Client


def _owned_by(pattern: str, members: int, owner: int, n: int) -> list[str]:
    """The first n paths pattern.format(i) (i = 0, 1, ...) whose records
    member ``owner`` of ``members`` holds."""
    out, i = [], 0
    while len(out) < n:
        p = pattern.format(i)
        if distribution.metadata_owner(p, members) == owner:
            out.append(p)
        i += 1
    return out


def test_peer_lookup_burst_does_not_stall_a_daemon(cluster):
    """Daemon 0's files live in directories daemon 1 holds and the other way
    round: every create makes a worker wait on the other daemon. 16 clients
    at once (4 workers per daemon, the default): all creates succeed, and a
    stat sent to daemon 0 meanwhile is answered within a second. (Before:
    creates failed with EIO after the client's 10 s timeout.)"""
    c = cluster(n=2)
    with Client(c.hosts_file) as gk:
        d_on_1 = _owned_by("/dir{}", 2, 1, 1)[0]
        d_on_0 = _owned_by("/dir{}", 2, 0, 1)[0]
        gk.mkdir(d_on_1, 0o755)
        gk.mkdir(d_on_0, 0o755)
    work = [_owned_by(f"{d_on_1}/a{r}f{{}}", 2, 0, 60) for r in range(8)] + \
        [_owned_by(f"{d_on_0}/b{r}f{{}}", 2, 1, 60) for r in range(8)]
    errors: list[BaseException] = []
    done = threading.Event()

    def creator(names: list[str]) -> None:
        try:
            with Client(c.hosts_file) as gk:
                for p in names:
                    gk.close(gk.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=creator, args=(names,)) for names in work]
    latencies: list[float] = []

    def prober() -> None:
        conn = c.conn(0, timeout=20.0)
        try:
            while not done.is_set():
                t = time.monotonic()
                conn.call("stat", {"path": "/"})
                latencies.append(time.monotonic() - t)
                time.sleep(0.01)
        finally:
            conn.close()

    probe = threading.Thread(target=prober)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    probe.start()
    for t in threads:
        t.join(120)
    done.set()
    probe.join(30)
    elapsed = time.monotonic() - t0
    assert not errors, errors[:3]
    assert latencies
    assert max(latencies) < 1.0, (f"a stat waited {max(latencies):.2f} s during the burst "
                                  f"({len(latencies)} probes, burst {elapsed:.1f} s)")
    with Client(c.hosts_file) as gk:
        for names in work:
            for p in names:
                assert gk.stat(p).st_mode & 0o777 == 0o644


def test_sync_daemon_keeps_every_acknowledged_change_across_kill_9(cluster, tmp_path):
    """With sync = true the receiving thread answers only reads; creates,
    size updates, chmods and removes go to the workers and each commit
    reaches the disk before its reply. kill -9 and a restart lose none."""
    conf = tmp_path / "sync.toml"
    conf.write_text("[daemon]\nsync = true\n")
    c = cluster(n=1, extra_args=["--config", str(conf)])
    with Client(c.hosts_file) as gk:
        gk.mkdir("/d", 0o755)
        for i in range(20):
            fd = gk.open(f"/d/f{i}", os.O_CREAT | os.O_WRONLY, 0o644)
            gk.write(fd, b"x" * (i + 1))
            gk.close(fd)
        gk.chmod("/d/f3", 0o600)
        gk.unlink("/d/f4")
        assert gk.stat("/d/f5").st_size == 6
    c.kill(0)
    c.restart(0)
    with Client(c.hosts_file) as gk:
        assert sorted(gk.listdir("/d")) == sorted(f"f{i}" for i in range(20) if i != 4)
        for i in range(20):
            if i != 4:
                assert gk.stat(f"/d/f{i}").st_size == i + 1
        assert gk.stat("/d/f3").st_mode & 0o777 == 0o600
