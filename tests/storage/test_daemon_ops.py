"""Op semantics on a real 3-daemon cluster, through the raw protocol."""
import errno
import heapq
import os
import stat as st
import threading
import time

import pytest

from gkfs_client import protocol
from gkfs_client.distribution import metadata_owner

from test_daemon_cluster import CS, create_file, read, write


@pytest.fixture
def c3(cluster):
    return cluster(n=3)


def listdir(c, path, limit=100):
    """Page every daemon with start_after and merge the sorted streams."""
    streams = []
    pages = 0
    for i in range(len(c.hosts())):
        names, after = [], ""
        while True:
            r = c.conn_at(i).call("get_dirents", {"path": path, "start_after": after, "limit": limit}).result
            pages += 1
            names += [e[0] for e in r["entries"]]
            assert len(r["entries"]) <= limit
            if not r["more"]:
                break
            after = r["entries"][-1][0]
        streams.append(names)
    for s in streams:
        assert [n.encode() for n in s] == sorted(n.encode() for n in s)
    return list(heapq.merge(*streams, key=lambda n: n.encode())), pages


def test_readdir_paged_and_merged_across_daemons(c3):
    c = c3
    c.meta_conn("/big").call("create", {"path": "/big", "mode": 0o040755})
    names = [f"f{i:05d}" for i in range(2500)] + ["ü", "a:b", "a.b", "z z"]
    for n in names:
        c.meta_conn(f"/big/{n}").call("create", {"path": f"/big/{n}", "mode": 0o100644})
    # descendants deeper down and a sibling with the same prefix must not show up
    c.meta_conn("/big/f00001").call("create", {"path": "/big/f00001", "mode": 0o100644})
    c.meta_conn("/big2").call("create", {"path": "/big2", "mode": 0o040755})
    c.meta_conn("/big2/x").call("create", {"path": "/big2/x", "mode": 0o100644})
    c.meta_conn("/big/sub").call("create", {"path": "/big/sub", "mode": 0o040755})
    c.meta_conn("/big/sub/deep").call("create", {"path": "/big/sub/deep", "mode": 0o100644})
    got, pages = listdir(c, "/big")
    expect = sorted(names + ["sub"], key=str.encode)
    assert got == expect
    assert pages > 25  # really paged
    per_daemon = [len(c.conn_at(i).call("get_dirents", {"path": "/big", "limit": 65536}).result["entries"])
                  for i in range(3)]
    assert all(n > 500 for n in per_daemon), per_daemon  # entries land on every daemon
    assert listdir(c, "/")[0] == ["big", "big2"]


def test_create_exclusive_and_types(c3):
    c = c3
    conn = c.meta_conn("/x")
    assert conn.call("create", {"path": "/x", "mode": 0o644}).result["created"]
    again = conn.call("create", {"path": "/x", "mode": 0o644}).result
    assert again["created"] is False and st.S_ISREG(again["stat"]["mode"])
    r = conn.request("create", {"path": "/x", "mode": 0o644, "exclusive": True})
    assert r.status == errno.EEXIST
    r = conn.request("create", {"path": "/x", "mode": st.S_IFLNK | 0o777})
    assert r.status == errno.EINVAL
    assert c.meta_conn("/").request("create", {"path": "/", "mode": 0o40755}).status == errno.EEXIST
    root = c.conn_at(0).call("stat", {"path": "/"}).result["stat"]
    assert st.S_ISDIR(root["mode"])


def test_remove_rules_and_chunks(c3):
    c = c3
    c.meta_conn("/d").call("create", {"path": "/d", "mode": 0o040755})
    key = create_file(c, "/f")["data_key"]
    write(c, "/f", key, 0, os.urandom(3 * CS + 5))
    assert c.meta_conn("/d").request("remove", {"path": "/d", "rmdir": False}).status == errno.EISDIR
    assert c.meta_conn("/f").request("remove", {"path": "/f", "rmdir": True}).status == errno.ENOTDIR
    assert c.meta_conn("/f").request("remove", {"path": "/f", "data_key": "other"}).status == errno.ENOENT
    rec = c.meta_conn("/f").call("remove", {"path": "/f", "rmdir": False}).result["stat"]
    assert rec["data_key"] == key and rec["size"] == 3 * CS + 5
    removed = sum(c.conn_at(i).call("remove_chunks", {"data_key": key}).result["removed"] for i in range(3))
    assert removed == 4
    assert c.meta_conn("/f").request("stat", {"path": "/f"}).status == errno.ENOENT
    assert c.meta_conn("/").request("remove", {"path": "/"}).status == errno.EBUSY
    stored = sum(c.conn_at(i).call("status").result["bytes_stored"] for i in range(3))
    assert stored == 0


def test_sparse_read_and_eof(c3):
    c = c3
    key = create_file(c, "/sparse")["data_key"]
    write(c, "/sparse", key, 5 * CS + 100, b"tail")
    data = read(c, "/sparse")
    assert len(data) == 5 * CS + 104 and data[:5 * CS + 100] == bytes(5 * CS + 100) and data[-4:] == b"tail"
    # without file_size: what the chunk file holds (short); past EOF with file_size: empty
    r = c.chunk_conn(key, 5).call("read_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[5, 0, CS]]})
    assert r.result["lengths"] == [104] and r.data[0][100:] == b"tail"
    r = c.chunk_conn(key, 9).call("read_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[9, 0, 10]],
                                                  "file_size": 5 * CS + 104})
    assert r.result["lengths"] == [0] and r.data == [b""]


def test_truncate_shrink_and_grow(c3):
    c = c3
    key = create_file(c, "/t")["data_key"]
    data = os.urandom(4 * CS)
    write(c, "/t", key, 0, data)
    new = CS + 7
    assert c.meta_conn("/t").call("truncate", {"path": "/t", "size": new}).result["stat"]["size"] == new
    res = [c.conn_at(i).call("truncate_chunks", {"data_key": key, "chunk_size": CS, "size": new}).result
           for i in range(3)]
    assert sum(r["removed"] for r in res) == 2 and sum(r["truncated"] for r in res) == 1
    assert read(c, "/t") == data[:new]
    c.meta_conn("/t").call("truncate", {"path": "/t", "size": 3 * CS})
    assert read(c, "/t") == data[:new] + bytes(3 * CS - new)
    assert c.meta_conn("/").request("truncate", {"path": "/", "size": 0}).status == errno.EISDIR


def test_concurrent_appends_get_disjoint_ranges(c3):
    c = c3
    create_file(c, "/log")
    offsets = []
    lock = threading.Lock()

    def appender(k):
        conn = c.conn(c.hosts()[metadata_owner("/log", 3)].id)
        for _ in range(50):
            r = conn.call("update_size", {"path": "/log", "offset": 0, "count": 10, "append": True}).result
            with lock:
                offsets.append(r["offset"])
        conn.close()

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(offsets) == list(range(0, 2000, 10))
    assert c.meta_conn("/log").call("stat", {"path": "/log"}).result["stat"]["size"] == 2000


def _same_owner_pair(n=3):
    base = "/r0"
    for i in range(1, 200):
        if metadata_owner(f"/r{i}", n) == metadata_owner(base, n):
            return base, f"/r{i}"
    raise AssertionError


def _other_owner_pair(n=3):
    base = "/q0"
    for i in range(1, 200):
        if metadata_owner(f"/q{i}", n) != metadata_owner(base, n):
            return base, f"/q{i}"
    raise AssertionError


def test_rename_same_owner_is_one_atomic_op(c3):
    c = c3
    old, new = _same_owner_pair()
    key = create_file(c, old)["data_key"]
    write(c, old, key, 0, b"payload")
    victim = create_file(c, new)
    r = c.meta_conn(old).call("rename", {"old": old, "new": new}).result
    assert r["stat"]["data_key"] == key and r["replaced"]["data_key"] == victim["data_key"]
    assert c.meta_conn(old).request("stat", {"path": old}).status == errno.ENOENT
    assert read(c, new) == b"payload"  # no data moved, still readable
    c.meta_conn("/rd").call("create", {"path": "/rd", "mode": 0o040755})
    assert c.meta_conn("/rd").request("rename", {"old": "/rd", "new": "/rd/in"}).status == errno.EINVAL


def test_rename_type_rules(c3):
    c = c3
    a, b = _same_owner_pair()
    create_file(c, a)
    c.meta_conn(b).call("create", {"path": b, "mode": 0o040755})
    assert c.meta_conn(a).request("rename", {"old": a, "new": b}).status == errno.EISDIR
    assert c.meta_conn(a).request("rename", {"old": b, "new": a}).status == errno.ENOTDIR
    assert c.meta_conn(a).request("rename", {"old": a + "x", "new": b}).status in (errno.ENOENT,)


def test_cross_daemon_rename_with_insert(c3):
    c = c3
    old, new = _other_owner_pair()
    rec = create_file(c, old)
    write(c, old, rec["data_key"], 0, b"moved")
    rec = c.meta_conn(old).call("stat", {"path": old}).result["stat"]
    assert c.meta_conn(new).call("insert", {"path": new, "record": rec, "replace": True,
                                                "from": old}).result["replaced"] is None
    c.meta_conn(old).call("remove", {"path": old, "data_key": rec["data_key"]})
    assert read(c, new) == b"moved"
    assert c.meta_conn(new).request("insert", {"path": new, "record": rec, "from": new}).status == errno.EEXIST
    bad = dict(rec, mode="x")
    assert c.meta_conn(new).request("insert", {"path": new, "record": bad, "replace": True,
                                                   "from": new}).status == errno.EINVAL


def test_symlink_readlink_utimens(c3):
    c = c3
    conn = c.meta_conn("/ln")
    s = conn.call("symlink", {"path": "/ln", "target": "../some/where"}).result["stat"]
    assert st.S_ISLNK(s["mode"]) and s["size"] == len("../some/where")
    assert conn.call("readlink", {"path": "/ln"}).result["target"] == "../some/where"
    assert conn.request("symlink", {"path": "/ln", "target": "x"}).status == errno.EEXIST
    create_file(c, "/plain")
    assert c.meta_conn("/plain").request("readlink", {"path": "/plain"}).status == errno.EINVAL
    before = c.meta_conn("/plain").call("stat", {"path": "/plain"}).result["stat"]
    after = c.meta_conn("/plain").call("utimens", {"path": "/plain", "mtime_ns": 123}).result["stat"]
    assert after["mtime_ns"] == 123 and after["atime_ns"] == before["atime_ns"]
    assert after["ctime_ns"] >= before["ctime_ns"]


def test_setattr_changes_a_record_in_place(c3):
    """chmod/chown (setattr) of a directory whose child's record sits on the
    same daemon: the old stat + insert(replace) answered ENOTEMPTY there."""
    c = c3
    d = "/sa"
    child = next(f"{d}/c{i}" for i in range(200) if metadata_owner(f"{d}/c{i}", 3) == metadata_owner(d, 3))
    conn = c.meta_conn(d)
    before = conn.call("create", {"path": d, "mode": 0o040700}).result["stat"]
    create_file(c, child)
    after = conn.call("setattr", {"path": d, "mode": 0o2751}).result["stat"]
    assert after["mode"] == st.S_IFDIR | 0o2751
    assert (after["uid"], after["gid"], after["data_key"]) == (before["uid"], before["gid"], before["data_key"])
    assert after["ctime_ns"] >= before["ctime_ns"] and after["mtime_ns"] == before["mtime_ns"]
    assert c.meta_conn(child).call("stat", {"path": child}).result["stat"]["mode"] == 0o100644
    owned = conn.call("setattr", {"path": d, "uid": 4242, "gid": 77}).result["stat"]
    assert (owned["mode"], owned["uid"], owned["gid"]) == (st.S_IFDIR | 0o2751, 4242, 77)
    assert conn.call("stat", {"path": d}).result["stat"] == owned
    # a symlink's own record (lchown); the type bits always stay
    c.meta_conn("/sa-ln").call("symlink", {"path": "/sa-ln", "target": "sa"})
    ln = c.meta_conn("/sa-ln").call("setattr", {"path": "/sa-ln", "gid": 5}).result["stat"]
    assert st.S_ISLNK(ln["mode"]) and ln["gid"] == 5 and ln["target"] == "sa"
    root = c.meta_conn("/").call("setattr", {"path": "/", "mode": 0o755}).result["stat"]
    assert root["mode"] == st.S_IFDIR | 0o755
    # bad input: a clear errno, nothing changed
    assert conn.request("setattr", {"path": d, "mode": 0o040755}).status == errno.EINVAL
    assert conn.request("setattr", {"path": d, "uid": 1 << 32}).status == errno.EINVAL
    assert conn.request("setattr", {"path": d, "mode": "755"}).status == errno.EINVAL
    assert c.meta_conn("/sa-none").request("setattr", {"path": "/sa-none", "mode": 0o600}).status == errno.ENOENT
    assert conn.call("stat", {"path": d}).result["stat"] == owned


def test_setattr_loses_no_concurrent_size_update(c3):
    """setattr and update_size on one file, racing: each is one LMDB write
    txn, so the final record has both the last mode and the full size."""
    c = c3
    create_file(c, "/sa-race")
    conn_m = c.meta_conn("/sa-race")
    n = 200

    def grow():
        conn_w = c.conn(c.hosts()[metadata_owner("/sa-race", 3)].id)   # one socket per thread
        for k in range(n):
            conn_w.call("update_size", {"path": "/sa-race", "offset": 0, "count": 1, "append": True})
        conn_w.close()

    t = threading.Thread(target=grow)
    t.start()
    try:
        for k in range(n):
            conn_m.call("setattr", {"path": "/sa-race", "mode": 0o600 | (k & 0o7)})
    finally:
        t.join()
    rec = conn_m.call("stat", {"path": "/sa-race"}).result["stat"]
    assert rec["size"] == n and rec["mode"] == st.S_IFREG | 0o600 | ((n - 1) & 0o7)


def test_write_updates_mtime(c3):
    c = c3
    rec = create_file(c, "/m")
    time.sleep(0.01)
    write(c, "/m", rec["data_key"], 0, b"x")
    now = c.meta_conn("/m").call("stat", {"path": "/m"}).result["stat"]
    assert now["mtime_ns"] > rec["mtime_ns"] and now["ctime_ns"] > rec["ctime_ns"]


def test_big_write_does_not_stall_stat(cluster, raw):
    c = cluster(n=1)
    key = create_file(c, "/huge")["data_key"]
    writer, statter = raw(c.address(0), timeout=60), raw(c.address(0))
    n = 128  # 64 MiB in one request, 512 KiB chunks
    payload = [os.urandom(CS)] * n
    writer.send_frames(writer.encode(
        "write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[i, 0, CS] for i in range(n)]},
        payload, req_id=1))
    stats, worst = 0, 0.0
    while not writer.sock.poll(0):
        t0 = time.monotonic()
        statter.call("stat", {"path": "/huge"})
        worst = max(worst, time.monotonic() - t0)
        stats += 1
    assert writer.recv_reply().raise_for_status().result["written"] == n * CS
    assert stats >= 3, stats  # metadata kept being served while the write was in flight
    assert worst < 1.0, worst


def test_statfs_and_status_counters(c3):
    c = c3
    create_file(c, "/s")
    res = [c.conn_at(i).call("statfs").result for i in range(3)]
    assert sum(r["files"] for r in res) == 1 and all(r["chunk_size"] == CS for r in res)
    st0 = c.meta_conn("/s").call("status").result
    assert st0["ops"]["create"] == 1 and st0["files"] == 1


def test_daemon_never_orphans_entries_it_holds(cluster):
    c = cluster(n=1)
    conn = c.conn_at(0)
    conn.call("create", {"path": "/d", "mode": 0o040755})
    conn.call("create", {"path": "/d/f", "mode": 0o100644})
    conn.call("create", {"path": "/e", "mode": 0o040755})
    assert conn.request("remove", {"path": "/d", "rmdir": True}).status == errno.ENOTEMPTY
    assert conn.request("rename", {"old": "/d", "new": "/x"}).status == errno.EXDEV
    assert conn.request("rename", {"old": "/e", "new": "/d"}).status == errno.ENOTEMPTY
    rec = conn.call("stat", {"path": "/e"}).result["stat"]
    assert conn.request("insert", {"path": "/d", "record": rec, "replace": True,
                                  "from": "/e"}).status == errno.ENOTEMPTY
    assert conn.call("rename", {"old": "/e", "new": "/x"}).result["replaced"] is None  # empty dir: fine
    conn.call("remove", {"path": "/d/f"})
    conn.call("remove", {"path": "/d", "rmdir": True})
    assert conn.request("create", {"path": "/m", "mode": 1 << 20}).status == errno.EINVAL


def test_random_writes_match_a_model(cluster):
    """Random pwrites across chunk boundaries (4 KiB chunks, 3 daemons) read back like a local model."""
    from hypothesis import HealthCheck, given, settings, strategies as hs

    from gkfs_client.distribution import chunk_ranges

    cs = 4096
    c = cluster(n=3, chunk_size=cs)
    counter = iter(range(10**6))

    def pwrite(path, key, offset, data):
        for index, off, length in chunk_ranges(offset, len(data), cs):
            s = index * cs + off - offset
            c.chunk_conn(key, index).call("write_chunks", {"data_key": key, "chunk_size": cs,
                                                           "chunks": [[index, off, length]]}, [data[s:s + length]])
        c.meta_conn(path).call("update_size", {"path": path, "offset": offset, "count": len(data)})

    def pread(path, key, offset, count):
        size = c.meta_conn(path).call("stat", {"path": path}).result["stat"]["size"]
        out = bytearray()
        for index, off, length in chunk_ranges(offset, max(0, min(count, size - offset)), cs):
            r = c.chunk_conn(key, index).call("read_chunks", {"data_key": key, "chunk_size": cs,
                                                              "chunks": [[index, off, length]], "file_size": size})
            out += r.data[0]
        return bytes(out)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hs.lists(hs.tuples(hs.integers(0, 5 * cs), hs.binary(min_size=1, max_size=3 * cs)), min_size=1,
                    max_size=6),
           hs.integers(0, 6 * cs), hs.integers(0, 9 * cs))
    def run(writes, roff, rcount):
        path = f"/h{next(counter)}"
        key = c.meta_conn(path).call("create", {"path": path, "mode": 0o100644}).result["stat"]["data_key"]
        model = bytearray()
        for off, data in writes:
            pwrite(path, key, off, data)
            if len(model) < off + len(data):
                model.extend(bytes(off + len(data) - len(model)))
            model[off:off + len(data)] = data
        assert pread(path, key, 0, len(model) + 10) == bytes(model)
        assert pread(path, key, roff, rcount) == bytes(model[roff:roff + rcount])

    run()
