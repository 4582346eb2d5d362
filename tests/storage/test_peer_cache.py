"""The daemons' cache of other daemons' directory records (daemon/dircache.py).

A daemon checking a path below a directory another daemon owns remembers
that directory's record; the owner makes every other daemon forget it
(peer op ``forget``, acknowledged) before it acknowledges a chmod, chown,
rename or rmdir to its client. Real daemons, security on; the second user
is a key issued to "nobody" (the daemons know a caller only by its key).
Each change below is checked by daemon B at once, well inside the cache's
lease (dircache.TTL_S): without the forget these fail.
"""
from __future__ import annotations

import errno
import os
import signal
import time

import pytest

from gkfs_daemon import dircache
from gkfs_client import distribution, security
from gkfs_client.client import Client

NOBODY = "nobody"


def _owned(prefix: str, owner: int, n: int = 2, skip: int = 0) -> str:
    """A path ``prefix``<i> whose metadata owner is member ``owner``."""
    for i in range(skip, skip + 10000):
        p = f"{prefix}{i}"
        if distribution.metadata_owner(p, n) == owner:
            return p
    raise AssertionError("no such name")


@pytest.fixture
def pair(cluster, tmp_path, monkeypatch):
    """(cluster, root's client, nobody's client, nobody's uid): two daemons."""
    c = cluster(n=2)
    keyfile = tmp_path / "nobody.key"
    security.issue_key(c.hosts_file, NOBODY, keyfile)
    os.chown(keyfile, os.geteuid(), os.getegid())  # used by this (root's) process, standing for nobody
    uid = security.identity_of_user(NOBODY)[0].uid
    root = Client(c.hosts_file, stat_cache_ttl=0)
    monkeypatch.setenv(security.ENV_KEY_FILE, str(keyfile))
    other = Client(c.hosts_file, stat_cache_ttl=0)
    monkeypatch.delenv(security.ENV_KEY_FILE)
    try:
        yield c, root, other, uid
    finally:
        other.disconnect()
        root.disconnect()


def _ops(fs: Client) -> dict[int, dict]:
    return {s["id"]: s["ops"] for s in fs.status()}


def _dir_on_a_file_on_b(root: Client, mode: int, tag: str) -> tuple[str, str]:
    """A directory held by member 0 (A) and a name in it held by member 1 (B)."""
    d = _owned(f"/{tag}", 0)
    root.mkdir(d, 0o755)
    root.chmod(d, mode)
    f = _owned(f"{d}/f", 1)
    return d, f


def _errno(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    return 0


def test_chmod_0700_on_a_is_enforced_by_b_at_once(pair):
    c, root, other, _uid = pair
    d, f = _dir_on_a_file_on_b(root, 0o755, "chmod")
    root.write_file(f, b"x")
    for _ in range(5):  # B now holds A's record of d
        assert other.stat(f).st_size == 1
    root.chmod(d, 0o700)
    assert _errno(other.stat, f) == errno.EACCES
    root.chmod(d, 0o755)
    assert other.stat(f).st_size == 1


def test_chown_away_on_a_is_enforced_by_b_at_once(pair):
    c, root, other, uid = pair
    d, _ = _dir_on_a_file_on_b(root, 0o700, "chown")
    root.chown(d, uid, -1)
    names = [_owned(f"{d}/g", 1, skip=k * 1000) for k in range(3)]
    other.write_file(names[0], b"mine")  # nobody may create in its own directory (checked by B)
    root.chown(d, 0, -1)  # taken back
    assert _errno(other.write_file, names[1], b"no") == errno.EACCES
    assert _errno(root.stat, names[1]) == errno.ENOENT


def test_rename_of_a_directory_on_a_is_seen_by_b_at_once(pair):
    c, root, other, _uid = pair
    d, f = _dir_on_a_file_on_b(root, 0o777, "ren")
    other.write_file(f, b"x")
    other.unlink(f)  # d is empty again, and cached on B
    new = _owned("/moved", 0)
    root.rename(d, new)
    # B must not let a file be created under the old name of the directory.
    assert _errno(other.write_file, f, b"orphan") == errno.ENOENT
    assert sorted(root.listdir(new)) == []


def test_a_tree_move_is_seen_at_once_for_every_directory_it_moved(pair):
    """A directory with entries is moved record by record by the client
    (protocol 4.8: insert at the new path, remove at the old, under fences):
    each removed directory record is forgotten by the other daemon."""
    c, root, other, _uid = pair
    top = _owned("/tree", 0)
    root.mkdir(top)
    root.chmod(top, 0o777)
    sub = _owned(f"{top}/sub", 0)
    root.mkdir(sub)
    root.chmod(sub, 0o777)
    f = _owned(f"{sub}/f", 1)  # created on B: B checks top and sub (both held by A)
    other.write_file(f, b"x")
    root.rename(top, _owned("/treemoved", 1))
    for p in (_owned(f"{sub}/h", 1), _owned(f"{sub}/h", 1, skip=1000)):
        assert _errno(other.write_file, p, b"orphan") == errno.ENOENT


def test_rmdir_and_recreate_on_a_is_enforced_by_b_at_once(pair):
    c, root, other, _uid = pair
    d, f = _dir_on_a_file_on_b(root, 0o777, "rmd")
    other.write_file(f, b"x")
    other.unlink(f)
    root.rmdir(d)
    root.mkdir(d, 0o755)
    root.chmod(d, 0o700)
    assert _errno(other.write_file, f, b"no") == errno.EACCES


def test_repeated_ops_in_one_directory_need_no_peer_lookups(pair):
    c, root, _other, _uid = pair
    d, _ = _dir_on_a_file_on_b(root, 0o755, "cnt")
    names = [_owned(f"{d}/s", 1, skip=k * 100) for k in range(40)]
    root.write_file(names[0], b"x")
    before = _ops(root)
    n = 0
    for p in names[1:]:
        root.write_file(p, b"x")  # create (parent write check on B)
        root.stat(p)
        n += 2
    after = _ops(root)
    asked = after[0].get("peer_stat", 0) - before[0].get("peer_stat", 0)
    sent = after[1].get("peer_lookup", 0) - before[1].get("peer_lookup", 0)
    assert asked <= 1 and sent <= 1, (asked, sent, n)


def test_forget_is_a_peer_op_only(pair, raw):
    c, root, _other, _uid = pair
    d, f = _dir_on_a_file_on_b(root, 0o755, "frg")
    root.write_file(f, b"x")
    root.stat(f)
    before = _ops(root)[1].get("peer_forget", 0)
    r = raw(c.address(1)).request("forget", {"paths": [d], "below": True})  # the cluster owner's client key
    assert r.status == errno.ENOSYS, r
    assert _ops(root)[1].get("peer_forget", 0) == before


def test_a_silent_peer_delays_the_change_past_its_lease_then_enforces_it(pair):
    """Documented choice (dircache): a daemon that does not acknowledge a
    forget makes the owner hold its reply until FORGET_WAIT_S after the
    change, longer than any lease the silent daemon can hold; the change is
    made and acknowledged (late), and the silent daemon never uses the old
    record once it runs again."""
    c, root, other, _uid = pair
    d, f = _dir_on_a_file_on_b(root, 0o755, "stop")
    root.write_file(f, b"x")
    assert other.stat(f).st_size == 1  # cached on B
    b = c.daemons[1]
    os.kill(b.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        root.chmod(d, 0o700)  # A waits for B, in vain
        took = time.monotonic() - t0
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert dircache.TTL_S <= took < dircache.FORGET_WAIT_S + 3, took
    assert _errno(other.stat, f) == errno.EACCES
    ops = _ops(root)
    assert ops[0].get("peer_forget_unacknowledged", 0) >= 1, ops[0]


def test_a_forget_wins_over_a_lookup_that_was_in_flight():
    """The generation check: a record fetched before a forget arrived is not
    stored after it (it may be the old one)."""
    cache = dircache.DirCache(max_entries=4, ttl_s=60)
    rec = {"mode": 0o040755, "uid": 0, "gid": 0}
    gen, sent = cache.generation(), dircache.now()
    cache.forget(["/d"], False)  # arrives while the lookup is out
    cache.store("/d", rec, gen, sent)
    assert cache.get("/d", dircache.now()) is None
    cache.store("/d", rec, cache.generation(), dircache.now())
    assert cache.get("/d", dircache.now()) == rec
    cache.store("/d/e", rec, cache.generation(), dircache.now())
    cache.forget(["/d"], True)  # a removal: everything below goes too
    assert len(cache) == 0
    for i in range(6):  # bounded
        cache.store(f"/x{i}", rec, cache.generation(), dircache.now())
    assert len(cache) == 4
    cache.store("/f", {"mode": 0o100644, "uid": 0, "gid": 0}, cache.generation(), dircache.now())
    assert cache.get("/f", dircache.now()) is None  # only directories
    old = dircache.now() - 61
    cache.store("/old", rec, cache.generation(), old)
    assert cache.get("/old", dircache.now()) is None  # the lease counts from the lookup's sending
