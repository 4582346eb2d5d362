"""Patch images (intercept/src/runtime/plan_cache.c, README "Start-up cost").

With the plan cache on (and no INTERCEPT_LOG or filter), a patch round
records per object what it wrote: each window with its original bytes, its
trampoline's bytes and place.  A later process of the same layout (the same
object file, the same core, the same distance between the two) replays
that instead of placing and emitting every site, and must end up with
exactly the code the plan gives.  An image that is damaged, that names a
window whose original bytes are not in memory, or that someone else could
have written is refused as a whole (the plan is used, the image rewritten),
never trusted.

A process whose whole round has an image reads the process image first
(test_process_image.py) and no per-object image at all; these tests remove
it before each run, so that what they see is the per-object images, which
are what a process falls back to (a new layout, a damaged process image).
"""
from __future__ import annotations

import struct
from pathlib import Path

from rv_harness import Riscv64Runner

# struct img_header in plan_cache.c: struct header (408), core_delta,
# rela_start, rela_end, nrec, payload, reuse_rela, pad
IMG_HEADER = 408 + 8 + 16 + 16
NREC_AT = 408 + 8 + 16
REC = 32   # patch_off, tramp_off, patch_len, tramp_len, anchor, pad


def fnv1a64(data: bytes) -> int:
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def drop_process_images(cache: Path) -> None:
    for p in cache.glob("*.pimg"):
        p.unlink()


def textsum(rv: Riscv64Runner, progs: Path, lib: Path, cache: Path,
            **env: str) -> tuple[str, str]:
    """(libc's and ld.so's code hashes, which cache files the run opened:
    per-object ones, the process image of an earlier run removed first)."""
    if cache.is_dir():
        drop_process_images(cache)
    res = rv.run([str(progs / "t_textsum")], preload=[lib],
                 env={"INTERCEPT_PLAN_CACHE": str(cache), "QEMU_STRACE": "1", **env})
    assert res.returncode == 0, res.describe()
    opened = " ".join(sorted({w.split('"')[1].rsplit(".", 1)[-1]
                              for w in res.err.splitlines()
                              if "openat(" in w and str(cache) in w and ".tmp" not in w
                              and ".pimg" not in w}))
    return res.out, opened


def images(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.img"))


def libc_image(cache: Path) -> Path:
    """The image of libc: the one with the most records."""
    return max(images(cache),
               key=lambda p: struct.unpack_from("<I", p.read_bytes(), NREC_AT)[0])


def test_recorded_then_replayed_with_the_same_code(rv: Riscv64Runner, test_programs: Path,
                                                   intercept_lib: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = textsum(rv, test_programs, intercept_lib, cache)
    assert len(images(cache)) == 2, list(cache.iterdir())   # libc, ld.so
    second, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == "img", opened        # no plan read: both objects replayed
    assert second == first
    for p in images(cache):               # the plan alone gives the same code
        p.unlink()
    third, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == "img plan", opened
    assert third == first
    bare = rv.run([str(test_programs / "t_textsum")])
    assert bare.returncode == 0 and bare.out != first, bare.describe()


def test_a_hook_works_from_an_image(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                                    hook_lib, tmp_path: Path) -> None:
    """The core alone (libsyscall_intercept.so) with a hook library: the
    trampolines an image wrote reach the hook."""
    cache = tmp_path / "cache"
    env = {"INTERCEPT_PLAN_CACHE": str(cache)}
    preload = [core_lib, hook_lib("fake_getpid")]
    for _ in range(2):
        if cache.is_dir():
            drop_process_images(cache)
        res = rv.run([str(test_programs / "t_getpid")], preload=preload, env=env)
        assert res.returncode == 0, res.describe()
        assert res.out == "getpid=424242 syscall=424242 agree\n", res.describe()
    assert len(images(cache)) == 2


def test_damaged_image_is_ignored_and_replaced(rv: Riscv64Runner, test_programs: Path,
                                               intercept_lib: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code, _ = textsum(rv, test_programs, intercept_lib, cache)
    img = libc_image(cache)
    good = img.read_bytes()
    raw = bytearray(good)
    raw[-20] ^= 0x40                      # a trampoline byte of the last record
    img.write_bytes(bytes(raw))
    again, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert "plan" in opened and again == code, opened
    assert img.read_bytes() == good, "the damaged image was not replaced"
    img.write_bytes(good[: len(good) // 2])   # cut short
    again, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert "plan" in opened and again == code, opened
    assert img.read_bytes() == good


def test_window_not_in_memory_is_refused(rv: Riscv64Runner, test_programs: Path,
                                         intercept_lib: Path, tmp_path: Path) -> None:
    """A well-formed image (right checksum) whose first window's original
    bytes are not what memory holds: refused as a whole before anything is
    written; the program runs with the plan's code."""
    cache = tmp_path / "cache"
    code, _ = textsum(rv, test_programs, intercept_lib, cache)
    img = libc_image(cache)
    good = img.read_bytes()
    raw = bytearray(good[:-8])
    nrec = struct.unpack_from("<I", raw, NREC_AT)[0]
    raw[IMG_HEADER + nrec * REC] ^= 0x01   # the first window's original bytes
    raw += struct.pack("<Q", fnv1a64(bytes(raw)))
    img.write_bytes(bytes(raw))
    again, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert "plan" in opened and again == code, opened
    assert img.read_bytes() == good


def test_image_others_may_write_is_ignored(rv: Riscv64Runner, test_programs: Path,
                                           intercept_lib: Path, tmp_path: Path) -> None:
    """Its bytes become code: an image that group or others may write is
    not replayed (a cache directory shared by mistake)."""
    cache = tmp_path / "cache"
    code, _ = textsum(rv, test_programs, intercept_lib, cache)
    for p in images(cache):
        p.chmod(0o620)
    again, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == "img plan" and again == code, opened


def test_one_image_per_layout(rv: Riscv64Runner, intercept_lib: Path, tmp_path: Path) -> None:
    """ls loads more libraries than true, so libc lies elsewhere from the
    core: each keeps its own image of libc and replays it, alternately."""
    cache = tmp_path / "cache"
    env = {"INTERCEPT_PLAN_CACHE": str(cache), "QEMU_STRACE": "1"}
    opened = []
    for argv in (["true"], ["ls", "/"], ["true"], ["ls", "/"]):
        if cache.is_dir():
            drop_process_images(cache)
        res = rv.run(argv, preload=[intercept_lib], env=env)
        assert res.returncode == 0, res.describe()
        opened.append(any(".plan" in w for w in res.err.splitlines() if "openat(" in w))
    assert opened == [True, True, False, False], opened
    assert len(images(cache)) == 3, images(cache)   # libc twice, ld.so once
