"""GNU tar (riscv64, preloaded) creating and extracting archives inside
gkfs, and between gkfs and the local file system, with gzip as an exec'd
child writing into gkfs through an inherited descriptor."""
from __future__ import annotations

import io
import os
import stat
import tarfile

from e2e_harness import LocalCluster, Riscv64Preload, local_tree


def _make_tree(root):
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    sizes = {"zero": 0, "small.txt": 100, "sub/seventy.bin": 70_000, "sub/deeper/big.bin": 333_333,
             "sub/deeper/chunk.bin": 65_536}
    for name, size in sizes.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "link").symlink_to("sub/seventy.bin")
    # Distinct permissions: tar -x creates directories 0700 and sets their
    # mode at the end (fchmodat with AT_SYMLINK_NOFOLLOW).
    for name, mode in [("sub", 0o751), ("sub/deeper", 0o705), ("empty", 0o770),
                       ("small.txt", 0o600), ("sub/seventy.bin", 0o640)]:
        os.chmod(root / name, mode)
    return root


def _modes_local(root) -> dict:
    return {str(p.relative_to(root)): oct(stat.S_IMODE(p.lstat().st_mode))
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


def _modes_gk(gkfs: LocalCluster, top: str, names) -> dict:
    return {n: oct(stat.S_IMODE(gkfs.client.lstat(gkfs.gk(f"{top}/{n}")).st_mode)) for n in names}


def _gk_tree(gkfs: LocalCluster, top: str) -> dict:
    """Like local_tree, symlinks as ('->', target)."""
    import stat as st
    c = gkfs.client
    out = {}

    def rec(d, rel):
        for name in sorted(c.listdir(gkfs.gk(d))):
            p, r = f"{d}/{name}", f"{rel}{name}"
            mode = c.lstat(gkfs.gk(p)).st_mode
            if st.S_ISLNK(mode):
                out[r] = ("->", c.readlink(gkfs.gk(p)))
            elif st.S_ISDIR(mode):
                out[r] = None
                rec(p, r + "/")
            else:
                out[r] = gkfs.read(p)
    rec(top, "")
    return out


def _local_tree_links(root):
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("->", os.readlink(p))
        else:
            out[rel] = None if p.is_dir() else p.read_bytes()
    return out


def test_tar_create_extract(rv: Riscv64Preload, gkfs: LocalCluster, gkdir: str, local):
    src = _make_tree(local / "src")
    want = _local_tree_links(src)

    # create: local tree -> archive in gkfs
    rv.run(["tar", "-C", str(local), "-cf", f"{gkdir}/src.tar", "src"]).ok()
    archive = gkfs.read(f"{gkdir}/src.tar")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        names = sorted(m.name for m in tf.getmembers())
        assert names == sorted(["src"] + [f"src/{k}" for k in want]), names
        assert tf.extractfile("src/sub/deeper/big.bin").read() == want["sub/deeper/big.bin"]

    # extract: archive in gkfs -> tree in gkfs (directories, files, a symlink, mtimes)
    rv.run(["mkdir", f"{gkdir}/x"]).ok()
    rv.run(["tar", "--no-same-owner", "-C", f"{gkdir}/x", "-xf", f"{gkdir}/src.tar"]).ok()
    assert _gk_tree(gkfs, f"{gkdir}/x/src") == want
    modes = _modes_local(src)
    assert _modes_gk(gkfs, f"{gkdir}/x/src", modes) == modes, "permissions tar -x set in gkfs"
    st_gk = gkfs.client.stat(gkfs.gk(f"{gkdir}/x/src/sub/deeper/big.bin"))
    assert int(st_gk.st_mtime) == int((src / "sub/deeper/big.bin").stat().st_mtime), "tar -x must set mtime (utimensat)"

    # create from the gkfs tree (getdents, fstatat, readlink on gkfs) into a local archive
    rv.run(["tar", "-C", f"{gkdir}/x", "-cf", str(local / "again.tar"), "src"]).ok()
    out = local / "out"
    out.mkdir()
    with tarfile.open(local / "again.tar") as tf:
        tf.extractall(out, filter="tar")
    assert _local_tree_links(out / "src") == want

    # tar -z: tar opens the archive in gkfs and execs gzip with it as stdout
    rv.run(["tar", "-C", str(local), "-czf", f"{gkdir}/src.tgz", "src"]).ok()
    with tarfile.open(fileobj=io.BytesIO(gkfs.read(f"{gkdir}/src.tgz")), mode="r:gz") as tf:
        assert tf.extractfile("src/sub/seventy.bin").read() == want["sub/seventy.bin"]
    # ... and back out of gkfs through gzip -d reading it as stdin
    (local / "fromgz").mkdir()
    rv.run(["tar", "-C", str(local / "fromgz"), "-xzf", f"{gkdir}/src.tgz"]).ok()
    assert _local_tree_links(local / "fromgz" / "src") == want

    gkfs.assert_spread([f"{gkdir}/src.tar", f"{gkdir}/x/src/sub/deeper/big.bin",
                        f"{gkdir}/x/src/sub/seventy.bin"])
    assert local_tree(src)  # the local source is untouched
