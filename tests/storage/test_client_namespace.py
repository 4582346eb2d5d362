"""Client namespace calls on real daemons: placement, readdir, rmdir, rename, links."""
from __future__ import annotations

import errno
import os
import stat
import time

import pytest

from gkfs_client import distribution
from gkfs_client.client import Client

CHUNK = 4096


@pytest.fixture
def gk(cluster):
    c = cluster(n=3, chunk_size=CHUNK)
    client = Client(hosts_file=c.hosts_file, timeout=20, dirents_page=7)
    yield client
    client.disconnect()


def test_files_dirs_and_data_land_on_every_daemon(gk):
    before = [s["files"] for s in gk.status()]
    gk.mkdir("/d")
    for i in range(30):
        gk.mkdir(f"/d/sub{i}")
        gk.write_file(f"/d/f{i}", b"x")
    after = gk.status()
    gained = [a["files"] - b for a, b in zip(after, before)]
    assert sum(gained) == 61
    assert all(g > 0 for g in gained), gained
    # Metadata sits exactly where the distribution function says.
    owners = [distribution.metadata_owner(p, 3) for p in ["/d"] + [f"/d/sub{i}" for i in range(30)]
              + [f"/d/f{i}" for i in range(30)]]
    assert [owners.count(i) for i in range(3)] == gained
    # One file of 30 chunks puts data on every daemon.
    gk.write_file("/d/big", os.urandom(30 * CHUNK))
    assert all(s["bytes_stored"] > 0 for s in gk.status())


def test_readdir_merges_all_daemons_across_pages(gk):
    gk.mkdir("/big")
    names = {f"n{i:03d}" for i in range(100)} | {"é-utf8", "Z", "a b"}
    for n in names:
        gk.write_file(f"/big/{n}", b"")
    gk.mkdir("/big/sub")
    gk.write_file("/big/sub/deeper", b"")  # a grandchild is not listed
    entries = gk.readdir("/big")
    got = [e.name for e in entries]
    # page size 7 with 3 daemons: many pages per daemon, merged in byte order.
    assert got == sorted(names | {"sub"}, key=lambda s: s.encode())
    assert [e.name for e in entries if e.is_dir()] == ["sub"]
    # Every daemon contributed entries.
    assert {distribution.metadata_owner(f"/big/{n}", 3) for n in got} == {0, 1, 2}
    with pytest.raises(NotADirectoryError):
        gk.readdir("/big/Z")
    with pytest.raises(FileNotFoundError):
        gk.readdir("/nothing")
    assert gk.listdir("/") == ["big"]


def test_mkdir_rmdir(gk):
    gk.mkdir("/a", 0o750)
    assert stat.S_ISDIR(gk.stat("/a").st_mode)
    with pytest.raises(FileExistsError):
        gk.mkdir("/a")
    with pytest.raises(FileNotFoundError):
        gk.mkdir("/no/such")
    gk.write_file("/a/f", b"1")
    with pytest.raises(OSError) as exc:
        gk.rmdir("/a")
    assert exc.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        gk.rmdir("/a/f")
    with pytest.raises(IsADirectoryError):
        gk.unlink("/a")
    gk.unlink("/a/f")
    gk.rmdir("/a")
    with pytest.raises(FileNotFoundError):
        gk.stat("/a")
    with pytest.raises(OSError) as exc:
        gk.rmdir("/")
    assert exc.value.errno == errno.EBUSY
    gk.makedirs("/x/y/z")
    gk.makedirs("/x/y/z", exist_ok=True)
    assert gk.listdir("/x/y") == ["z"]


def test_unlink_removes_chunks_everywhere(gk):
    gk.write_file("/f", os.urandom(40 * CHUNK))
    stored = sum(s["bytes_stored"] for s in gk.status())
    assert stored >= 40 * CHUNK
    gk.unlink("/f")
    assert sum(s["bytes_stored"] for s in gk.status()) == stored - 40 * CHUNK
    with pytest.raises(FileNotFoundError):
        gk.unlink("/f")


def _pair(owners_equal: bool) -> tuple[str, str]:
    """Two names whose metadata owners are (or are not) the same daemon."""
    for i in range(1000):
        a, b = f"/r{i}", f"/s{i}"
        if (distribution.metadata_owner(a, 3) == distribution.metadata_owner(b, 3)) == owners_equal:
            return a, b
    raise AssertionError("no pair found")


@pytest.mark.parametrize("same_owner", [True, False])
def test_rename_file_keeps_data_and_replaces_target(gk, same_owner):
    old, new = _pair(same_owner)
    data = os.urandom(5 * CHUNK + 3)
    gk.write_file(old, data)
    gk.rename(old, new)
    with pytest.raises(FileNotFoundError):
        gk.stat(old)
    assert gk.read_file(new) == data
    # Rename over an existing file replaces it and frees its chunks.
    gk.write_file(old, b"other")
    stored = sum(s["bytes_stored"] for s in gk.status())
    gk.rename(new, old)
    assert gk.read_file(old) == data
    assert sum(s["bytes_stored"] for s in gk.status()) == stored - len(b"other")
    assert gk.listdir("/") == [old[1:]]


def test_rename_errors_and_directories(gk):
    gk.mkdir("/d")
    gk.mkdir("/e")
    gk.write_file("/d/f", b"1")
    gk.write_file("/g", b"2")
    with pytest.raises(FileNotFoundError):
        gk.rename("/nope", "/x")
    with pytest.raises(FileNotFoundError):
        gk.rename("/g", "/nodir/g")
    with pytest.raises(OSError) as exc:
        gk.rename("/d", "/d/inside")
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(IsADirectoryError):
        gk.rename("/g", "/e")
    with pytest.raises(NotADirectoryError):
        gk.rename("/e", "/g")
    with pytest.raises(OSError) as exc:
        gk.rename("/e", "/d")  # target directory not empty
    assert exc.value.errno == errno.ENOTEMPTY
    gk.rename("/e", "/e2")  # an empty directory moves
    assert sorted(gk.listdir("/")) == ["d", "e2", "g"]
    before = {n: gk.stat(f"/d/{n}").st_ino for n in gk.listdir("/d")}
    gk.rename("/d", "/moved")  # a populated one too: every record moves (protocol 4.8)
    assert sorted(gk.listdir("/")) == ["e2", "g", "moved"]
    assert {n: gk.stat(f"/moved/{n}").st_ino for n in gk.listdir("/moved")} == before  # same files
    gk.rename("/moved", "/d")
    gk.rename("/g", "/g")
    assert gk.read_file("/g") == b"2"


def test_symlink_readlink_and_follow(gk):
    gk.mkdir("/dir")
    gk.write_file("/dir/real", b"content")
    gk.symlink("real", "/dir/rel")
    gk.symlink("/dir/real", "/abs")
    assert gk.readlink("/dir/rel") == "real"
    assert gk.read_file("/dir/rel") == b"content"
    assert gk.read_file("/abs") == b"content"
    assert stat.S_ISLNK(gk.lstat("/abs").st_mode)
    assert stat.S_ISREG(gk.stat("/abs").st_mode)
    gk.symlink("/loop2", "/loop1")
    gk.symlink("/loop1", "/loop2")
    with pytest.raises(OSError) as exc:
        gk.open("/loop1")
    assert exc.value.errno == errno.ELOOP
    with pytest.raises(FileExistsError):
        gk.symlink("x", "/abs")
    with pytest.raises(OSError) as exc:
        gk.readlink("/dir/real")
    assert exc.value.errno == errno.EINVAL


def test_utime_and_mtime_kept(gk):
    gk.write_file("/t", b"abc")
    t0 = gk.stat("/t").st_mtime_ns
    time.sleep(0.01)
    gk.write_file("/t", b"abcd")
    assert gk.stat("/t").st_mtime_ns > t0
    gk.utime("/t", ns=(1_000_000_000, 2_000_000_000))
    st = gk.stat("/t")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000, 2_000_000_000)
    assert st.st_mtime == 2.0


def test_relative_paths_and_dotdot(gk):
    gk.mkdir("/w")
    gk.cwd = "/w"
    gk.write_file("rel", b"r")
    assert gk.read_file("/w/rel") == b"r"
    assert gk.read_file("../w/./rel") == b"r"
    with pytest.raises(OSError) as exc:
        gk.stat("/../../etc/passwd")
    assert exc.value.errno == errno.EINVAL


def test_statfs_sums_daemons(gk):
    s = gk.statfs()
    assert s["chunk_size"] == CHUNK
    assert s["total_bytes"] > 0 and s["free_bytes"] > 0


def test_readdir_bigger_than_the_default_page(cluster):
    """More entries than one default page (1024) on a single daemon."""
    c = cluster(n=3, chunk_size=CHUNK)
    with Client(hosts_file=c.hosts_file, timeout=30) as gk:
        gk.mkdir("/huge")
        names = [f"e{i:05d}" for i in range(3300)]
        for n in names:
            gk.close(gk.open(f"/huge/{n}", os.O_CREAT | os.O_WRONLY))
        per_daemon = [sum(distribution.metadata_owner(f"/huge/{n}", 3) == i for n in names) for i in range(3)]
        assert max(per_daemon) > 1024
        assert gk.listdir("/huge") == names
        gets = [s["ops"].get("get_dirents", 0) for s in gk.status()]
        assert gk.listdir("/huge") == names
        after = [s["ops"].get("get_dirents", 0) for s in gk.status()]
        # Paged: the daemon holding the most entries was asked more than once.
        assert max(a - b for a, b in zip(after, gets)) >= 2


def _errno_of(fn):
    try:
        fn()
    except OSError as exc:
        return exc.errno
    return 0


def test_not_a_directory_errors_match_the_kernel(gk, tmp_path):
    """A regular file used as a directory ("f/x", "f/") is ENOTDIR, as the
    kernel answers (BUG 5); each case is run on a local directory of the same
    shape too and the errnos compared, so the expectation is the kernel's."""
    local = tmp_path / "kernel"
    local.mkdir()
    (local / "d").mkdir()
    (local / "d" / "f").write_bytes(b"data")
    os.symlink("f", local / "d" / "lf")
    os.symlink(".", local / "d" / "ld")
    gk.mkdir("/d")
    gk.write_file("/d/f", b"data")
    gk.symlink("f", "/d/lf")
    gk.symlink(".", "/d/ld")
    cases = {
        "stat f/x": lambda fs, p: fs.stat(p("d/f/x")),
        "stat f/x/y": lambda fs, p: fs.stat(p("d/f/x/y")),
        "stat f/": lambda fs, p: fs.stat(p("d/f/")),
        "stat f/.": lambda fs, p: fs.stat(p("d/f/.")),
        "lstat f/": lambda fs, p: fs.lstat(p("d/f/")),
        "lstat lf/": lambda fs, p: fs.lstat(p("d/lf/")),
        "stat missing/x": lambda fs, p: fs.stat(p("d/nope/x")),
        "stat d/missing": lambda fs, p: fs.stat(p("d/nope")),
        "open f/": lambda fs, p: fs.open(p("d/f/"), os.O_RDONLY),
        "open f/ O_CREAT": lambda fs, p: fs.open(p("d/f/"), os.O_WRONLY | os.O_CREAT),
        "open new/ O_CREAT": lambda fs, p: fs.open(p("d/new/"), os.O_WRONLY | os.O_CREAT),
        "open f/x": lambda fs, p: fs.open(p("d/f/x"), os.O_RDONLY),
        "open f/x O_CREAT": lambda fs, p: fs.open(p("d/f/x"), os.O_WRONLY | os.O_CREAT),
        "open f/x/y O_CREAT": lambda fs, p: fs.open(p("d/f/x/y"), os.O_WRONLY | os.O_CREAT),
        "mkdir f/x": lambda fs, p: fs.mkdir(p("d/f/x")),
        "mkdir f/x/y": lambda fs, p: fs.mkdir(p("d/f/x/y")),
        "unlink f/": lambda fs, p: fs.unlink(p("d/f/")),
        "unlink f/x": lambda fs, p: fs.unlink(p("d/f/x")),
        "rmdir f/x": lambda fs, p: fs.rmdir(p("d/f/x")),
        "truncate f/": lambda fs, p: fs.truncate(p("d/f/"), 0),
        "listdir f/x": lambda fs, p: fs.listdir(p("d/f/x")),
        "stat d/": lambda fs, p: fs.stat(p("d/")),
        "stat ld/": lambda fs, p: fs.stat(p("d/ld/")),
    }
    kernel, ours = {}, {}
    for name, fn in cases.items():
        kernel[name] = _errno_of(lambda: fn(os, lambda rel: str(local) + "/" + rel))
        ours[name] = _errno_of(lambda: fn(gk, lambda rel: "/" + rel))
    assert ours == kernel
    assert kernel["stat f/x"] == errno.ENOTDIR and kernel["stat f/"] == errno.ENOTDIR
    # nothing was removed or created by the refused calls
    assert gk.read_file("/d/f") == b"data"
    assert sorted(gk.listdir("/d")) == ["f", "ld", "lf"]


def test_rename_populated_directory_atomic_for_observers(cluster):
    """Two other clients stat both names in a loop while a tree of 3 levels
    is renamed once: reading the old name then the new one never finds
    neither, reading the new one then the old one never finds both."""
    import threading
    from gkfs_client.client import Client
    c = cluster(n=3)
    mover, watchers = Client(c.hosts_file), [Client(c.hosts_file) for _ in range(2)]
    mover.mkdir("/a")
    for i in range(4):
        mover.mkdir(f"/a/s{i}")
        mover.mkdir(f"/a/s{i}/t")
        for j in range(4):
            mover.write_file(f"/a/s{i}/t/f{j}", f"{i}{j}".encode())
    stop, bad, rounds = threading.Event(), [], [0]

    def watch(w):
        k = 0
        while not stop.is_set():
            k += 1
            if k % 2:
                a, b = w.exists("/a/s3/t/f3"), w.exists("/b/s3/t/f3")
                if not a and not b:
                    bad.append(("neither", k))
            else:
                b, a = w.exists("/b/s3/t/f3"), w.exists("/a/s3/t/f3")
                if a and b:
                    bad.append(("both", k))
            rounds[0] += 1

    threads = [threading.Thread(target=watch, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    while rounds[0] < 10:
        time.sleep(0.01)
    mover.rename("/a", "/b")
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert not bad, bad
    assert mover.read_file("/b/s2/t/f1") == b"21" and not mover.exists("/a")
    for cl in (mover, *watchers):
        cl.disconnect()
