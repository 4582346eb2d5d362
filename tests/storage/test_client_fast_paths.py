"""The client's one-request paths (issue 9, client CPU per call): a stat or a
create waits on its daemon's socket alone (one zmq_poll + one receive), a
plainly canonical path skips the normalising walk, and os.stat_result is
built from one tuple. Each keeps the behaviour of the general path: the
timeout holds whatever signals arrive, every spelling of a path gives the
same answer and the same errors, every stat field is the same."""
from __future__ import annotations

import errno
import os
import signal
import stat as st
import time

import pytest

from gkfs_client import client as client_mod
from gkfs_client import security
from gkfs_client.client import Client


class _GuardExpired(Exception):
    pass


def test_timeout_holds_under_a_periodic_signal(cluster):
    """A program with a periodic timer signal (a sampling profiler, an
    alarm-driven progress line) still gets EIO within the timeout from a
    daemon that does not answer. A blocking receive with the socket's
    RCVTIMEO would wait forever here: pyzmq restarts it with the whole
    timeout after every EINTR, and the signal comes every 20 ms."""
    c = cluster(n=1)
    gk = Client(hosts_file=c.hosts_file, timeout=1.0)
    gk.mkdir("/d")
    guard = time.monotonic() + 30.0
    ticks = [0]

    def tick(_sig, _frame):
        ticks[0] += 1
        if time.monotonic() > guard:   # never hang the test suite: fail instead
            raise _GuardExpired("the call waited 30 s under a periodic signal")

    old = signal.signal(signal.SIGALRM, tick)
    c.daemons[0].send_signal(signal.SIGSTOP)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
        for call in (lambda: gk.stat("/d/f"),
                     lambda: gk.open("/d/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)):
            t = time.monotonic()
            with pytest.raises(OSError) as exc:
                call()
            took = time.monotonic() - t
            assert exc.value.errno == errno.EIO, exc.value
            assert 0.9 < took < 4.0, took
        assert ticks[0] > 50   # the signal really kept arriving meanwhile
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
        c.daemons[0].send_signal(signal.SIGCONT)
    # the stale requests are dropped; the same client carries on
    gk.close(gk.open("/d/g", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    assert st.S_ISREG(gk.stat("/d/g").st_mode)
    gk.disconnect()


def _same(a: os.stat_result, b: os.stat_result) -> None:
    fields = [f for f in dir(a) if f.startswith("st_")]
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}


def test_every_spelling_of_a_path_stats_alike(cluster):
    c = cluster(n=2)
    gk = Client(hosts_file=c.hosts_file, stat_cache_ttl=0)
    gk.makedirs("/d/sub")
    gk.write_file("/d/f", b"12345")
    gk.symlink("/d/f", "/d/l")
    gk.symlink("/d", "/d/dl")
    ref = gk.stat("/d/f")
    assert ref.st_size == 5 and st.S_ISREG(ref.st_mode)
    for spelling in ("/d//f", "/d/./f", "/d/sub/../f", "//d/f", "/d/l"):
        _same(gk.stat(spelling), ref)
    gk.cwd = "/d"
    for spelling in ("f", "./f", "sub/../f", "l"):
        _same(gk.stat(spelling), ref)
    gk.cwd = "/"
    assert st.S_ISLNK(gk.lstat("/d/l").st_mode)
    assert st.S_ISLNK(gk.stat("/d/l", follow_symlinks=False).st_mode)
    # "name/" requires a directory: followed even without follow_symlinks
    assert st.S_ISDIR(gk.stat("/d/dl/", follow_symlinks=False).st_mode)
    for spelling in ("/d/f/", "/d/f/.", "/d/l/"):
        with pytest.raises(NotADirectoryError):
            gk.stat(spelling)
    with pytest.raises(FileNotFoundError):
        gk.stat("/d/missing")
    with pytest.raises(NotADirectoryError):
        gk.stat("/d/f/x")   # an ancestor that is a file
    # open: the same paths, the same answers
    fd = gk.open("/d/f")
    _same(gk.fstat(fd), ref)
    gk.close(fd)
    with pytest.raises(NotADirectoryError):
        gk.open("/d/f/")
    with pytest.raises(IsADirectoryError):
        gk.open("/d/new/", os.O_CREAT | os.O_WRONLY)
    with pytest.raises(OSError) as exc:
        gk.open("/d/l", os.O_RDONLY | os.O_NOFOLLOW)
    assert exc.value.errno == errno.ELOOP
    with pytest.raises(FileExistsError):
        gk.open("/d/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with pytest.raises(FileNotFoundError):
        gk.open("/d/nodir/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with pytest.raises(NotADirectoryError):
        gk.open("/d/f/g", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with pytest.raises(OSError) as exc:
        gk.stat("/d/" + "x" * 256)
    assert exc.value.errno == errno.ENAMETOOLONG
    gk.disconnect()


def test_stat_result_has_every_field_of_the_keyword_form(cluster):
    """The one-tuple os.stat_result equals the keyword form field by field
    (st_rdev unset: None), for a file, a directory and a symlink."""
    assert client_mod._STAT_BY_SEQUENCE   # CPython's layout: the fast form is in use
    c = cluster(n=1)
    gk = Client(hosts_file=c.hosts_file, stat_cache_ttl=0)
    gk.mkdir("/d")
    gk.write_file("/d/f", b"x" * 70000)
    gk.symlink("/d/f", "/d/l")
    for path in ("/d/f", "/d", "/d/l"):
        rec = gk.stat_record(path, follow_symlinks=False)
        got = client_mod.stat_result(rec, gk.chunk_size, path)
        key = rec.get("data_key") or ""
        at, mt, ct = rec["atime_ns"], rec["mtime_ns"], rec["ctime_ns"]
        want = os.stat_result(
            (rec["mode"], client_mod._ino(key, "" if key else path), 0, rec["nlink"], rec["uid"], rec["gid"],
             rec["size"], at // 10**9, mt // 10**9, ct // 10**9),
            {"st_atime": at / 1e9, "st_mtime": mt / 1e9, "st_ctime": ct / 1e9, "st_atime_ns": at,
             "st_mtime_ns": mt, "st_ctime_ns": ct, "st_blksize": gk.chunk_size,
             "st_blocks": (rec["size"] + 511) // 512})
        _same(got, want)
        assert got == want and got.st_rdev is None
        _same(gk.lstat(path), want)
    assert gk.stat("/d/f").st_blocks == (70000 + 511) // 512
    gk.disconnect()


@pytest.mark.parametrize("mode", ["curve", "off"])
def test_created_entries_belong_to_the_caller(cluster, mode, monkeypatch):
    """The client's create carries no uid/gid arguments: the daemon makes a
    new file or directory its caller's (the key's user; with security off,
    the daemon's own user: here both are this process's), as the kernel
    would, in either mode."""
    c = cluster(n=2, extra_args=["--security", "off"] if mode == "off" else [])
    monkeypatch.setenv(security.ENV_SECURITY, mode)
    gk = Client(hosts_file=c.hosts_file, stat_cache_ttl=0)
    gk.mkdir("/d", 0o755)
    gk.close(gk.open("/d/f", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640))
    gk.write_file("/d/g", b"x")
    for path, kind in (("/d", st.S_IFDIR), ("/d/f", st.S_IFREG), ("/d/g", st.S_IFREG)):
        s = gk.stat(path)
        assert (s.st_uid, s.st_gid) == (os.getuid(), os.getgid()), path
        assert st.S_IFMT(s.st_mode) == kind
    assert st.S_IMODE(gk.stat("/d/f").st_mode) == 0o640 & ~gk.umask
    gk.disconnect()
