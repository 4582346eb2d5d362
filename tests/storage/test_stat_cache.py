"""The readdir stat cache (issue 9): a stat right after a readdir of the
same entries costs no RPC; this client's own changes are seen at once,
another client's within the TTL; bounded; off with a TTL of 0. Counted with
the daemons' op counters."""
from __future__ import annotations

import os
import time

import pytest

from gkfs_client.client import Client

N = 40


def _fill(gk, d: str, n: int = N) -> list[str]:
    gk.mkdir(d)
    names = [f"f{i:03d}" for i in range(n)]
    for i, name in enumerate(names):
        gk.write_file(f"{d}/{name}", b"x" * i)
    return names


def test_stat_after_readdir_costs_no_rpc(cluster, client_op_delta):
    c = cluster(n=3)
    with Client(c.hosts_file) as writer:
        names = _fill(writer, "/d")
    with Client(c.hosts_file, stat_cache_ttl=30) as gk:   # a long TTL: no flake on a loaded machine
        got = []
        # one get_dirents per daemon, one stat of the directory itself
        assert client_op_delta(gk, lambda: got.extend(gk.readdir("/d"))) == {"get_dirents": 3, "stat": 1}
        assert [e.name for e in got] == names
        sts = []
        assert client_op_delta(gk, lambda: sts.extend(gk.stat(f"/d/{e.name}") for e in got)) == {}
        for i, st in enumerate(sts):
            assert st.st_size == i and st.st_mode & 0o170000 == 0o100000
        # the same figures as a stat by RPC (inode, times, owner)
        for e, st in zip(got, sts):
            fresh = gk.stat(f"/d/{e.name}")
            assert (fresh.st_ino, fresh.st_mtime_ns, fresh.st_uid, fresh.st_mode, fresh.st_size) == \
                   (st.st_ino, st.st_mtime_ns, st.st_uid, st.st_mode, st.st_size)


def test_entry_answers_one_stat(cluster, client_op_delta):
    """One-shot: the second stat of a path asks the daemon."""
    c = cluster(n=1)
    with Client(c.hosts_file, stat_cache_ttl=30) as gk:
        _fill(gk, "/d", 3)
        gk.listdir("/d")
        assert client_op_delta(gk, lambda: gk.stat("/d/f001")) == {}
        assert client_op_delta(gk, lambda: gk.stat("/d/f001")) == {"stat": 1}
        # fstat never comes from the cache
        fd = gk.open("/d/f002")
        gk.listdir("/d")
        assert client_op_delta(gk, lambda: gk.fstat(fd)) == {"stat": 1}
        gk.close(fd)


def test_own_changes_are_seen_at_once(cluster, client_op_delta):
    c = cluster(n=3)
    with Client(c.hosts_file, stat_cache_ttl=60) as gk:
        _fill(gk, "/d", 10)
        gk.mkdir("/d/sub")
        gk.mkdir("/d/sub/deep")
        gk.write_file("/d/sub/deep/z", b"z")
        gk.listdir("/d")
        gk.listdir("/d/sub/deep")
        gk.unlink("/d/f000")
        gk.rename("/d/f001", "/d/moved")
        gk.rename("/d/f002", "/d/f003")          # over a cached entry
        fd = gk.open("/d/f004", os.O_WRONLY)
        gk.pwrite(fd, b"y" * 1000, 0)
        gk.close(fd)
        gk.chmod("/d/f005", 0o600)
        gk.truncate("/d/f006", 0)
        gk.utime("/d/f007", ns=(5, 7))
        gk.rename("/d/sub", "/d/sub2")           # a directory with entries: its cached subtree goes
        with pytest.raises(FileNotFoundError):
            gk.stat("/d/f000")
        with pytest.raises(FileNotFoundError):
            gk.stat("/d/f001")
        with pytest.raises(FileNotFoundError):
            gk.stat("/d/f002")
        assert gk.stat("/d/f003").st_size == 2
        assert gk.stat("/d/moved").st_size == 1
        assert gk.stat("/d/f004").st_size == 1000
        assert gk.stat("/d/f005").st_mode & 0o7777 == 0o600
        assert gk.stat("/d/f006").st_size == 0
        assert gk.stat("/d/f007").st_mtime_ns == 7
        with pytest.raises(FileNotFoundError):
            gk.stat("/d/sub/deep/z")
        with pytest.raises(FileNotFoundError):
            gk.stat("/d/sub")
        # untouched entries still come from the cache
        assert client_op_delta(gk, lambda: gk.stat("/d/f008")) == {}
        # rmdir, mkdir, symlink over listed names
        gk.mkdir("/e")
        gk.mkdir("/e/empty")
        gk.write_file("/e/gone", b"")
        gk.listdir("/e")
        gk.rmdir("/e/empty")
        gk.unlink("/e/gone")
        gk.symlink("/d", "/e/gone")
        with pytest.raises(FileNotFoundError):
            gk.stat("/e/empty")
        assert gk.lstat("/e/gone").st_mode & 0o170000 == 0o120000


def test_other_clients_changes_seen_within_ttl(cluster):
    c = cluster(n=3)
    ttl = 0.4
    with Client(c.hosts_file, stat_cache_ttl=ttl) as a, Client(c.hosts_file) as b:
        _fill(b, "/d", 4)
        a.listdir("/d")
        t0 = time.monotonic()
        b.unlink("/d/f000")
        fd = b.open("/d/f001", os.O_WRONLY)
        b.pwrite(fd, b"y" * 100, 0)
        b.close(fd)
        # within the TTL: the listing's records (the documented window)
        if time.monotonic() - t0 < ttl / 2:
            assert a.stat("/d/f000").st_size == 0
        time.sleep(max(0.0, t0 + ttl + 0.05 - time.monotonic()))
        # after the TTL: the daemons' records
        with pytest.raises(FileNotFoundError):
            a.stat("/d/f000")
        assert a.stat("/d/f001").st_size == 100


def test_ttl_zero_turns_the_cache_off(cluster, monkeypatch, client_op_delta):
    c = cluster(n=2)
    with Client(c.hosts_file) as w:
        names = _fill(w, "/d", 10)
    for gk in (Client(c.hosts_file, stat_cache_ttl=0), _env_client(monkeypatch, c.hosts_file)):
        with gk:
            d = client_op_delta(gk, lambda: gk.listdir("/d"))
            assert d == {"get_dirents": 2, "stat": 1}
            assert client_op_delta(gk, lambda: [gk.stat(f"/d/{n}") for n in names]) == {"stat": len(names)}


def _env_client(monkeypatch, hosts_file) -> Client:
    monkeypatch.setenv("LIBGKFS_STAT_CACHE_TTL_MS", "0")
    gk = Client(hosts_file)
    monkeypatch.delenv("LIBGKFS_STAT_CACHE_TTL_MS")
    assert not gk.stat_cache.enabled
    return gk


def test_cache_bound_holds(cluster, client_op_delta):
    """A directory larger than the bound: at most the bound is kept, the
    rest of the stats are RPCs, and nothing is answered wrongly."""
    c = cluster(n=2)
    bound = 25
    with Client(c.hosts_file) as w:
        names = _fill(w, "/d", 80)
    with Client(c.hosts_file, stat_cache_entries=bound, stat_cache_ttl=60, dirents_page=10) as gk:
        seen = []
        for e in gk.scandir("/d"):
            seen.append(e.name)
            assert len(gk.stat_cache) <= bound
        assert seen == names
        assert 0 < len(gk.stat_cache) <= bound
        d = client_op_delta(gk, lambda: [gk.stat(f"/d/{n}").st_size == i or pytest.fail(n)
                                for i, n in enumerate(names)])
        assert len(names) - bound <= d["stat"] < len(names)
        assert len(gk.stat_cache) == 0


def test_symlink_entries_answer_lstat_only(cluster, client_op_delta):
    c = cluster(n=1)
    with Client(c.hosts_file, stat_cache_ttl=30) as gk:
        gk.mkdir("/d")
        gk.write_file("/d/t", b"abc")
        gk.symlink("t", "/d/l")
        gk.listdir("/d")
        assert client_op_delta(gk, lambda: gk.lstat("/d/l")) == {}
        gk.listdir("/d")
        # following the link needs the target, which the listing does not carry
        d = {}
        d.update(client_op_delta(gk, lambda: gk.stat("/d/l").st_size == 3 or pytest.fail("size")))
        assert d.get("stat", 0) >= 1


def test_pages_with_records_fit_the_frame_limit(cluster):
    """get_dirents with stats ends a page early (more: true) before its
    records could outgrow max_frame_size; paging still returns every entry
    with its record. Without stats the page is as before."""
    c = cluster(n=1, extra_args=["--max-frame-size", str(1 << 20)])
    conn = c.conn_at(0)
    conn.call("create", {"path": "/big", "mode": 0o040755})
    names = [f"{i:04d}" + "n" * 200 for i in range(3000)]
    for n in names:
        conn.call("create", {"path": f"/big/{n}", "mode": 0o100600})
    plain = conn.call("get_dirents", {"path": "/big", "limit": 65536}).result
    assert len(plain["entries"]) == 3000 and not plain["more"] and "stats" not in plain
    got, rows, pages, after = [], [], 0, ""
    while True:
        r = conn.call("get_dirents", {"path": "/big", "limit": 65536, "stats": True, "start_after": after}).result
        pages += 1
        assert len(r["stats"]) == len(r["entries"]) > 0
        got += [e[0] for e in r["entries"]]
        rows += r["stats"]
        if not r["more"]:
            break
        after = r["entries"][-1][0]
    assert got == names and pages > 1
    rec = conn.call("stat", {"path": f"/big/{names[7]}"}).result["stat"]
    assert rows[7] == [rec[k] for k in ("mode", "size", "nlink", "uid", "gid", "atime_ns", "mtime_ns",
                                        "ctime_ns", "data_key")]
