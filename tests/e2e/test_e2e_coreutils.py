"""coreutils (riscv64, under qemu, preloaded) on gkfs: mkdir -p, cp, cat,
ls -l, stat, du, find, mv, rm -r, dd, sha256sum. Each result is read back
through the Python Client; the same runs also read and write local paths."""
from __future__ import annotations

import hashlib
import os
import stat

from e2e_harness import LocalCluster, Riscv64Preload


def test_coreutils(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    c = gkfs.client
    data = os.urandom(1_000_003)  # 16 chunks of 64 KiB: spread over the daemons
    src = local / "src.bin"
    src.write_bytes(data)
    d = f"{gkdir}/a/b/c"

    # mkdir -p: every level is a gkfs directory
    rv.run(["mkdir", "-p", d]).ok()
    for p in (f"{gkdir}/a", f"{gkdir}/a/b", d):
        assert stat.S_ISDIR(c.stat(gkfs.gk(p)).st_mode), p

    # cp local -> gkfs, cp gkfs -> local (one process: two worlds)
    rv.run(["cp", str(src), f"{d}/f.bin"]).ok()
    assert gkfs.read(f"{d}/f.bin") == data
    rv.run(["cp", f"{d}/f.bin", str(local / "back.bin")]).ok()
    assert (local / "back.bin").read_bytes() == data
    # cp gkfs -> gkfs
    rv.run(["cp", f"{d}/f.bin", f"{d}/copy.bin"]).ok()
    assert gkfs.read(f"{d}/copy.bin") == data

    # cat: a local and a gkfs file in one process
    r = rv.run(["cat", str(src), f"{d}/f.bin"]).ok()
    assert r.stdout == data + data, f"cat gave {len(r.stdout)} bytes, expected {2 * len(data)}"

    # ls -l: names and sizes as the daemons have them
    r = rv.run(["ls", "-l", d]).ok()
    lines = {ln.split()[-1]: ln.split() for ln in r.out.splitlines() if not ln.startswith("total")}
    assert sorted(lines) == ["copy.bin", "f.bin"], r.out
    assert lines["f.bin"][0].startswith("-") and int(lines["f.bin"][4]) == len(data), r.out
    r = rv.run(["ls", "-l", f"{gkdir}/a"]).ok()
    assert r.out.splitlines()[-1].startswith("d") and r.out.split()[-1] == "b", r.out

    # stat: size, type, permissions agree with the daemons
    r = rv.run(["stat", "-c", "%s|%F|%a", f"{d}/f.bin", d]).ok()
    fst, dst = r.out.splitlines()
    assert fst == f"{len(data)}|regular file|{stat.S_IMODE(c.stat(gkfs.gk(d) + '/f.bin').st_mode):o}", r.out
    assert dst.split("|")[1] == "directory", r.out

    # dd: write with seek (a hole before), read with skip
    rv.run(["dd", f"if={src}", f"of={d}/dd.bin", "bs=4096", "count=40", "seek=3", "status=none"]).ok()
    got = gkfs.read(f"{d}/dd.bin")
    assert len(got) == 43 * 4096
    assert got[:3 * 4096] == bytes(3 * 4096) and got[3 * 4096:] == data[:40 * 4096]
    rv.run(["dd", f"if={d}/f.bin", f"of={local}/dd_out", "bs=1000", "skip=100", "count=50",
            "status=none"]).ok()
    assert (local / "dd_out").read_bytes() == data[100_000:150_000]
    # dd conv=notrunc overwriting the middle of a gkfs file
    (local / "patch").write_bytes(b"Z" * 70_000)
    rv.run(["dd", f"if={local}/patch", f"of={d}/copy.bin", "bs=70000", "seek=5", "conv=notrunc",
            "status=none"]).ok()
    want = bytearray(data)
    want[350_000:420_000] = b"Z" * 70_000
    assert gkfs.read(f"{d}/copy.bin") == bytes(want)

    # sha256sum of a gkfs and a local file in one run
    r = rv.run(["sha256sum", f"{d}/f.bin", str(src), f"{d}/copy.bin"]).ok()
    sums = [ln.split()[0] for ln in r.out.splitlines()]
    assert sums == [hashlib.sha256(data).hexdigest()] * 2 + [hashlib.sha256(want).hexdigest()], r.out

    # find: the whole tree, and only files
    r = rv.run(["find", gkdir, "-type", "f"]).ok()
    assert sorted(r.out.split()) == sorted(f"{d}/{n}" for n in ("f.bin", "copy.bin", "dd.bin")), r.out
    r = rv.run(["find", gkdir, "-name", "*.bin", "-size", "+900k"]).ok()  # 977 KiB each
    assert sorted(r.out.split()) == [f"{d}/copy.bin", f"{d}/f.bin"], r.out
    r = rv.run(["find", gkdir]).ok()
    assert sorted(r.out.split()) == sorted([gkdir, f"{gkdir}/a", f"{gkdir}/a/b", d] +
                                           [f"{d}/{n}" for n in ("f.bin", "copy.bin", "dd.bin")]), r.out

    # du -sb: apparent sizes, as the daemons report them
    expect = 0
    for root, _dirs, files in _walk(gkfs, gkdir):
        expect += c.lstat(gkfs.gk(root)).st_size
        expect += sum(c.lstat(gkfs.gk(f"{root}/{f}")).st_size for f in files)
    r = rv.run(["du", "-sb", gkdir]).ok()
    assert int(r.out.split()[0]) == expect, (r.out, expect)

    # spread: this test's data is on at least two daemons' disks
    gkfs.assert_spread([f"{d}/f.bin", f"{d}/copy.bin", f"{d}/dd.bin"])

    # mv inside gkfs: a file, then a directory tree
    rv.run(["mv", f"{d}/f.bin", f"{gkdir}/a/moved.bin"]).ok()
    assert not gkfs.exists(f"{d}/f.bin") and gkfs.read(f"{gkdir}/a/moved.bin") == data
    rv.run(["mv", f"{gkdir}/a/b", f"{gkdir}/b2"]).ok()
    assert not gkfs.exists(f"{gkdir}/a/b")
    assert gkfs.listdir(f"{gkdir}/b2/c") == ["copy.bin", "dd.bin"]
    assert gkfs.read(f"{gkdir}/b2/c/copy.bin") == bytes(want)
    # mv local -> gkfs (rename must say EXDEV, mv then copies and unlinks)
    rv.run(["mv", str(local / "back.bin"), f"{gkdir}/from-local.bin"]).ok()
    assert not (local / "back.bin").exists() and gkfs.read(f"{gkdir}/from-local.bin") == data
    # mv gkfs -> local
    rv.run(["mv", f"{gkdir}/from-local.bin", str(local / "again.bin")]).ok()
    assert not gkfs.exists(f"{gkdir}/from-local.bin") and (local / "again.bin").read_bytes() == data

    # rm -r a gkfs tree (and rm of a local file in the same process)
    rv.run(["rm", "-r", f"{gkdir}/b2", str(local / "again.bin")]).ok()
    assert not gkfs.exists(f"{gkdir}/b2") and not (local / "again.bin").exists()
    assert gkfs.listdir(gkdir) == ["a"] and gkfs.listdir(f"{gkdir}/a") == ["moved.bin"]
    # rm of a missing gkfs file: the kernel's error, non-zero exit
    r = rv.run(["rm", f"{gkdir}/nothing-here"])
    assert r.returncode == 1 and "No such file or directory" in r.err, r.describe()


def _walk(gkfs: LocalCluster, top: str):
    """os.walk over gkfs through the Client, yielding mounted paths."""
    c = gkfs.client
    dirs, files = [], []
    for name in c.listdir(gkfs.gk(top)):
        p = f"{top}/{name}"
        (dirs if stat.S_ISDIR(c.lstat(gkfs.gk(p)).st_mode) else files).append(name)
    yield top, dirs, files
    for name in dirs:
        yield from _walk(gkfs, f"{top}/{name}")


def test_cp_archive_and_chmod(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    """cp -a into gkfs keeps modes, mtimes and symlinks; chmod works on
    non-empty directories whichever daemon holds their entries."""
    src = local / "tree"
    for i in range(4):
        d = src / f"dir{i}" / "inner"
        d.mkdir(parents=True)
        (d / "f.bin").write_bytes(os.urandom(1000 + i))
        (src / f"dir{i}" / "top.txt").write_text(f"top {i}\n")
        os.chmod(d, 0o750 - i)
        os.chmod(src / f"dir{i}", 0o755 - 0o10 * i)
    (src / "link").symlink_to("dir0/top.txt")
    os.utime(src / "dir1" / "top.txt", (1_000_000_000, 1_000_000_000))
    rv.run(["cp", "-a", str(src), f"{gkdir}/tree"]).ok()
    c = gkfs.client
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        g = c.lstat(gkfs.gk(f"{gkdir}/tree/{rel}"))
        assert stat.S_IMODE(g.st_mode) == stat.S_IMODE(p.lstat().st_mode), f"mode of {rel}"
        if p.is_file() and not p.is_symlink():
            assert gkfs.read(f"{gkdir}/tree/{rel}") == p.read_bytes(), rel
    assert c.readlink(gkfs.gk(f"{gkdir}/tree/link")) == "dir0/top.txt"
    assert int(c.stat(gkfs.gk(f"{gkdir}/tree/dir1/top.txt")).st_mtime) == 1_000_000_000
    # chmod -R over the copied tree (directories with entries on every daemon)
    rv.run(["chmod", "-R", "u=rwX,g=rX,o=", f"{gkdir}/tree"]).ok()
    for i in range(4):
        assert stat.S_IMODE(c.stat(gkfs.gk(f"{gkdir}/tree/dir{i}")).st_mode) == 0o750
        assert stat.S_IMODE(c.stat(gkfs.gk(f"{gkdir}/tree/dir{i}/top.txt")).st_mode) == 0o640


def test_large_directory(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    """A directory of 3000 entries (several readdir pages from each daemon):
    ls, ls -U, find and python3 list every name exactly once."""
    c = gkfs.client
    names = [f"entry-{i:05d}" for i in range(3000)]
    for n in names:
        c.close(c.open(gkfs.gk(f"{gkdir}/{n}"), os.O_CREAT | os.O_WRONLY, 0o644))
    want = sorted(names)
    files = [s["files"] for s in c.status()]
    assert all(n >= 500 for n in files), f"metadata records per daemon {files}: not spread over all daemons"
    r = rv.run(["ls", gkdir]).ok()
    assert r.out.split() == want, f"ls: {len(r.out.split())} names"
    r = rv.run(["ls", "-U", gkdir]).ok()
    got = r.out.split("\n")[:-1]
    assert sorted(got) == want, (f"ls -U: {len(got)} names, {len(set(got))} distinct, "
                                 f"strays {sorted(set(got) - set(want))[:5]!r}")
    r = rv.run(["find", gkdir, "-type", "f"]).ok()
    assert sorted(p.rsplit("/", 1)[1] for p in r.out.split()) == want
    r = rv.run(["python3", "-c", "import os,sys; print('\\n'.join(e.name for e in os.scandir(sys.argv[1])))",
                gkdir]).ok()
    assert sorted(r.out.split()) == want
    # rm -r of the whole directory removes every entry
    rv.run(["rm", "-r", gkdir]).ok()
    assert not gkfs.exists(gkdir)
    c.mkdir(gkfs.gk(gkdir))  # the fixture's directory, for its teardown
