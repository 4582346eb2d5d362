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

import errno
import os
import threading
import time

import pytest

from gkfs_client import distribution, security
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


def test_a_pipeline_of_metadata_and_data_requests_is_answered_whole(cluster):
    """The receiving thread answers the metadata requests queued for it one
    after the other (up to server.DRAIN_MAX in a row) and hands data
    requests to the workers in between. 800 requests sent before any reply
    is read (creates, then stats, removes and a write or read every 40th):
    each answered exactly once with its own result, the queued replies
    beyond the client's pipe waiting in the daemon's backlog, and the op
    counters count each request once. Then 48 clients with two requests
    each, three rounds."""
    c = cluster(n=1)
    conn = c.conn(0, timeout=30.0)
    try:
        data = conn.call("create", {"path": "/data", "mode": 0o100644}).result["stat"]
        chunk = {"data_key": data["data_key"], "chunk_size": conn.call("ping").result["chunk_size"]}
        conn.call("write_chunks", {**chunk, "chunks": [[0, 0, 3]]}, [b"abc"])
        before = conn.call("status").result["ops"]
        n = 200
        expect: dict[int, tuple[str, object]] = {}
        req_id = 1000
        sent = []
        for i in range(n):
            sent.append(("create", {"path": f"/p{i}", "mode": 0o100600 | (i % 8) << 3}))
        for i in range(n):
            sent.append(("stat", {"path": f"/p{i}"}))
            if i % 40 == 0:
                sent.append(("write_chunks", {**chunk, "chunks": [[0, 100 + i, 3]]}))  # not what is read
            if i % 40 == 20:
                sent.append(("read_chunks", {**chunk, "chunks": [[0, 0, 3]], "file_size": 3}))
        for i in range(n):
            sent.append(("stat", {"path": f"/missing{i}"}))
        for i in range(n):
            sent.append(("remove", {"path": f"/p{i}", "rmdir": False}))
        for op, args in sent:
            req_id += 1
            expect[req_id] = (op, args)
            frames = conn.encode(op, args, [b"abc"] if op == "write_chunks" else (), req_id=req_id)
            conn.send_frames(frames)
        time.sleep(0.5)  # let the replies pile up unread
        got: dict[int, object] = {}
        for _ in range(len(sent)):
            r = conn.recv_reply(timeout=30)
            assert r.req_id in expect and r.req_id not in got, r
            got[r.req_id] = r
        assert len(got) == len(sent)
        for rid, (op, args) in expect.items():
            r = got[rid]
            if op == "stat" and args["path"].startswith("/missing"):
                assert r.status == errno.ENOENT, (args, r)
                continue
            assert r.status == 0, (op, args, r)
            if op in ("create", "stat", "remove"):
                i = int(args["path"][2:])
                assert r.result["stat"]["mode"] == 0o100600 | (i % 8) << 3, (op, args, r.result)
            elif op == "read_chunks":
                assert r.data == [b"abc"], r
        after = conn.call("status").result["ops"]
        for op, count in (("create", n), ("stat", 2 * n), ("remove", n), ("write_chunks", n // 40),
                          ("read_chunks", n // 40)):
            assert after.get(op, 0) - before.get(op, 0) == count, (op, before, after)
        # Many clients with a request or two each (their replies never wait
        # in a backlog, so the receiving thread answers whatever is queued in
        # a row): every one answered with its own record.
        conns = [c.conn(0, timeout=30.0) for _ in range(48)]
        try:
            for rnd in range(3):
                for k, cn in enumerate(conns):
                    for j in range(2):
                        cn.send_frames(cn.encode("create" if rnd == 0 else "stat",
                                                 {"path": f"/q{k}-{j}", "mode": 0o100600 | j << 3},
                                                 req_id=10 * k + j + 1))
                for k, cn in enumerate(conns):
                    replies = sorted((cn.recv_reply(timeout=30) for _ in range(2)), key=lambda r: r.req_id)
                    assert [r.req_id for r in replies] == [10 * k + 1, 10 * k + 2], replies
                    for j, r in enumerate(replies):
                        assert r.status == 0 and r.result["stat"]["mode"] == 0o100600 | j << 3, r
        finally:
            for cn in conns:
                cn.close()
    finally:
        conn.close()


def test_permission_walk_on_a_single_daemon(cluster, tmp_path, monkeypatch):
    """One daemon holds every record: the directories a permission check
    walks are read in one transaction (peer.Peers.records). A user other
    than the owner ("nobody", by an issued key) is stopped at a directory
    it may not search at any depth, until that directory is opened up; a
    missing or non-directory component is ENOENT as before."""
    c = cluster(n=1)
    keyfile = tmp_path / "nobody.key"
    security.issue_key(c.hosts_file, "nobody", keyfile)
    os.chown(keyfile, os.geteuid(), os.getegid())
    root = Client(c.hosts_file, stat_cache_ttl=0)
    monkeypatch.setenv(security.ENV_KEY_FILE, str(keyfile))
    other = Client(c.hosts_file, stat_cache_ttl=0)
    monkeypatch.delenv(security.ENV_KEY_FILE)
    try:
        root.chmod("/", 0o1777)
        for d in ("/a", "/a/b", "/a/b/c"):
            root.mkdir(d, 0o755)
        root.close(root.open("/a/b/c/f", os.O_CREAT | os.O_WRONLY, 0o644))
        root.close(root.open("/a/file", os.O_CREAT | os.O_WRONLY, 0o644))
        assert other.stat("/a/b/c/f").st_mode & 0o777 == 0o644

        def no_create_or_remove() -> None:
            with pytest.raises(PermissionError):
                other.close(other.open("/a/b/c/new", os.O_CREAT | os.O_WRONLY, 0o644))
            with pytest.raises(PermissionError):
                other.unlink("/a/b/c/f")

        for closed in ("/a", "/a/b", "/a/b/c"):
            root.chmod(closed, 0o700)
            with pytest.raises(PermissionError):
                other.stat("/a/b/c/f")
            no_create_or_remove()
            root.chmod(closed, 0o755)
            assert other.stat("/a/b/c/f").st_mode & 0o777 == 0o644
        # search but no write permission in c: no create or remove there,
        # but an existing name is EEXIST for O_EXCL (as the kernel checks)
        # and opens without O_EXCL; a missing one is ENOENT for stat
        with pytest.raises(FileExistsError):
            other.open("/a/b/c/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        other.close(other.open("/a/b/c/f", os.O_CREAT | os.O_RDONLY, 0o644))
        with pytest.raises(FileNotFoundError):
            other.stat("/a/b/c/missing")
        no_create_or_remove()
        root.chmod("/a/b/c", 0o777)
        other.close(other.open("/a/b/c/new", os.O_CREAT | os.O_WRONLY, 0o644))
        other.unlink("/a/b/c/new")
        with pytest.raises(FileNotFoundError):
            other.stat("/a/nope/f")
        with pytest.raises(OSError) as exc:
            other.stat("/a/file/f")
        assert exc.value.errno in (errno.ENOENT, errno.ENOTDIR)
        assert root.stat("/a/b/c/f").st_mode & 0o777 == 0o644
    finally:
        other.disconnect()
        root.disconnect()


def test_per_request_shortcuts_give_the_documented_results(tmp_path, monkeypatch):
    """What the receiving thread remembers or reuses per request gives the
    same bytes as the plain definitions, also once its bounded memory was
    cleared (bounds lowered here to clear it often): capability MACs
    (HMAC-SHA256 of data_key|rights|uid, first 32 hex digits, docs/protocol),
    LMDB keys (blake2b-128 of the parent + name), the directories a
    permission walk passes, packed records and replies."""
    import hashlib
    import hmac

    import msgpack

    from gkfs_client import protocol
    from gkfs_daemon import access, handlers, metadata

    who = security.Identity(1234, 1234, frozenset())
    monkeypatch.setattr(access, "_MACS_MAX", 3)
    for n in range(40):  # more secrets than the keyed HMACs kept
        secret = bytes([n]) * 32
        for key in ("k1", "k2"):
            for rights in ("r", "rw", "d"):
                want = hmac.new(secret, f"{key}|{rights}|1234".encode(), hashlib.sha256).hexdigest()[:32]
                assert access.make_cap(secret, key, rights, who) == f"{rights}.{want}"
                assert access.check_cap(secret, key, f"{rights}.{want}", who, rights[0])

    monkeypatch.setattr(metadata, "_DIR_DIGESTS_MAX", 3)
    monkeypatch.setattr(handlers, "_DIRS_ABOVE_MAX", 3)
    store = metadata.MetadataStore(tmp_path / "m", sync=False)
    try:
        paths = [f"/d{i}/e{j}/f" for i in range(5) for j in range(3)]
        for p in paths:
            parent, name = protocol.parent_and_name(p)
            digest = hashlib.blake2b(parent.encode(), digest_size=16).digest()
            assert metadata.key_of(p) == digest + name.encode()
            names = p.strip("/").split("/")[:-1]
            want = ["/"] + ["/" + "/".join(names[:i]) for i in range(1, len(names) + 1)]
            got = handlers._dirs_above(p)
            assert got == want
            got.append("/changed by a caller")
            assert handlers._dirs_above(p) == want
        assert metadata.key_of("/") == hashlib.blake2b(b"", digest_size=16).digest()
        for p in ("/top", "/\u00e9/\u00fc", "/top/x"):  # a name in "/", non-ASCII names
            parent, name = protocol.parent_and_name(p)
            assert metadata.key_of(p) == hashlib.blake2b(parent.encode(), digest_size=16).digest() + name.encode()
        assert handlers._dirs_above("/") == ["/"]
        with store._write() as txn:
            for i, p in enumerate(paths):
                store._put(txn, p, metadata.new_record(0o100644, i, i))
        recs = store.get_many(["/", "/nope"] + paths)
        assert recs[0]["mode"] == metadata.ROOT_MODE and recs[1] is None
        assert [r["uid"] for r in recs[2:]] == list(range(len(paths)))
        assert recs[2:] == [store.get(p) for p in paths]
        recs[0]["mode"] = 0  # a caller's change of "/"'s stand-in record stays its own
        assert store.get("/")["mode"] == metadata.ROOT_MODE
        rec = recs[2]
        assert metadata._pack(rec) == msgpack.packb(rec, use_bin_type=True)
        reply = protocol.encode_reply(7, {"stat": rec, "b": b"\x00\x01"})[0]
        assert reply == msgpack.packb({"v": protocol.PROTOCOL_VERSION, "id": 7, "status": 0, "msg": "",
                                       "result": {"stat": rec, "b": b"\x00\x01"}}, use_bin_type=True)
    finally:
        store.close()
