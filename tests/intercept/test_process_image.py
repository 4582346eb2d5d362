"""The process image (intercept/src/runtime/process_image.c, README "Start-up cost").

When every selected object of the constructor's round had a patch image,
the round is also recorded whole: one file, keyed by this core and every
loaded object (name, selection; identity and distance from the core for
the selected ones), replayed by a later process of the same layout before
any object is planned or its own image read.  It must give exactly the code
the plan gives; one that is damaged, that names a window whose original
bytes are not in memory, that someone else could have written, or that was
recorded for another layout is refused as a whole (the per-object images
are used and the process image rewritten), never trusted.  A dlopen after a
replay finds the trampoline regions as the constructor's round left them.
"""
from __future__ import annotations

import re
import struct
from pathlib import Path

from rv_harness import Riscv64Runner

# struct pimg_header: magic 8, version 4, core_id_len 4, core_id 32, nobj,
# reuse_rela, nrec, npiece (4 each), payload 8, declared 4, pad 4; then
# struct pimg_obj (96) per object, the hook's declaration (1024 classes),
# struct pimg_rec (32) per record, struct pimg_piece (16) per piece (off 8,
# len 4, window 4), the payload, a checksum (8).
HEADER, WANT = 80, 1024
NOBJ_AT, NREC_AT, NPIECE_AT, PAYLOAD_AT = 48, 56, 60, 64
OBJ, REC, PIECE = 96, 32, 16
FAKE_PID = 424242
M64 = 0xFFFFFFFFFFFFFFFF


def pimg_sum(data: bytes) -> int:
    """process_image.c, sum_words."""
    h = 0xcbf29ce484222325
    for (w,) in struct.iter_unpack("<Q", data):
        h = ((h ^ w) * 0x100000001b3) & M64
        h ^= h >> 32
    return h


def process_images(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pimg"))


def run(rv: Riscv64Runner, argv: list[str], preload: list[Path], cache: Path,
        **env: str) -> tuple[str, set[str]]:
    """(output, kinds of cache files the run opened: pimg, img, plan)."""
    res = rv.run(argv, preload=preload,
                 env={"INTERCEPT_PLAN_CACHE": str(cache), "QEMU_STRACE": "1", **env})
    assert res.returncode == 0, res.describe()
    opened = {w.split('"')[1].rsplit(".", 1)[-1] for w in res.err.splitlines()
              if "openat(" in w and str(cache) in w and ".tmp" not in w and "= -1" not in w}
    return res.out, opened


def textsum(rv: Riscv64Runner, progs: Path, lib: Path, cache: Path) -> tuple[str, set[str]]:
    return run(rv, [str(progs / "t_textsum")], [lib], cache)


def first_window_orig(raw: bytes) -> int:
    """Offset of the first window's original bytes in a process image."""
    nobj, = struct.unpack_from("<I", raw, NOBJ_AT)
    nrec, npiece = struct.unpack_from("<II", raw, NREC_AT)
    pieces = HEADER + nobj * OBJ + WANT + nrec * REC
    at = pieces + npiece * PIECE
    for i in range(npiece):
        _, length, window = struct.unpack_from("<QII", raw, pieces + i * PIECE)
        if window:
            return at
        at += length
    raise AssertionError("no window in the process image")


def test_recorded_then_replayed_with_the_same_code(rv: Riscv64Runner, test_programs: Path,
                                                   intercept_lib: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == set(), opened               # nothing there yet: planned
    assert len(process_images(cache)) == 1, list(cache.iterdir())
    second, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == {"pimg"}, opened            # the process image alone
    assert second == first
    bare = rv.run([str(test_programs / "t_textsum")])
    assert bare.returncode == 0 and bare.out != first, bare.describe()


def test_a_hook_works_from_a_process_image(rv: Riscv64Runner, test_programs: Path,
                                           core_lib: Path, hook_lib, tmp_path: Path) -> None:
    """The core alone with a hook library: the trampolines the process
    image wrote reach the hook (libc's getpid and the raw ecall)."""
    cache = tmp_path / "cache"
    opened = []
    for _ in range(2):
        out, seen = run(rv, [str(test_programs / "t_getpid")],
                        [core_lib, hook_lib("fake_getpid")], cache)
        assert out == f"getpid={FAKE_PID} syscall={FAKE_PID} agree\n", out
        opened.append(seen)
    assert opened == [set(), {"pimg"}], opened


def test_damaged_process_image_is_refused_and_replaced(rv: Riscv64Runner, test_programs: Path,
                                                       intercept_lib: Path,
                                                       tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code, _ = textsum(rv, test_programs, intercept_lib, cache)
    pimg, = process_images(cache)
    good = pimg.read_bytes()
    for bad in (good[:-20] + bytes([good[-20] ^ 0x40]) + good[-19:],   # a payload byte
                good[: len(good) // 2]):                               # cut short
        pimg.write_bytes(bad)
        again, opened = textsum(rv, test_programs, intercept_lib, cache)
        # refused: the objects' own images instead, the same code
        assert opened == {"pimg", "img"} and again == code, opened
        assert pimg.read_bytes() == good, "the damaged process image was not replaced"


def test_window_not_in_memory_is_refused(rv: Riscv64Runner, test_programs: Path,
                                         intercept_lib: Path, tmp_path: Path) -> None:
    """Well-formed (right checksum), but the first window's original bytes
    are not what memory holds: refused before anything is written."""
    cache = tmp_path / "cache"
    code, _ = textsum(rv, test_programs, intercept_lib, cache)
    pimg, = process_images(cache)
    good = pimg.read_bytes()
    raw = bytearray(good[:-8])
    raw[first_window_orig(good)] ^= 0x01
    raw += struct.pack("<Q", pimg_sum(bytes(raw)))
    pimg.write_bytes(bytes(raw))
    again, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == {"pimg", "img"} and again == code, opened
    assert pimg.read_bytes() == good


def test_process_image_others_may_write_is_ignored(rv: Riscv64Runner, test_programs: Path,
                                                   intercept_lib: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code, _ = textsum(rv, test_programs, intercept_lib, cache)
    pimg, = process_images(cache)
    pimg.chmod(0o602)
    again, opened = textsum(rv, test_programs, intercept_lib, cache)
    assert opened == {"pimg", "img"} and again == code, opened


def test_another_layout_is_refused(rv: Riscv64Runner, intercept_lib: Path,
                                   tmp_path: Path) -> None:
    """ls loads more libraries than true, so its key differs (another file);
    ls's image put in the place of true's, checksum and all, is refused by
    the key and replaced; each layout then replays its own."""
    cache = tmp_path / "cache"
    _, opened = run(rv, ["true"], [intercept_lib], cache)
    mine, = process_images(cache)
    _, opened = run(rv, ["ls", "/"], [intercept_lib], cache)
    other, = set(process_images(cache)) - {mine}
    good = mine.read_bytes()
    mine.write_bytes(other.read_bytes())
    _, opened = run(rv, ["true"], [intercept_lib], cache)
    assert opened == {"pimg", "img"}, opened
    assert mine.read_bytes() == good
    for argv in (["true"], ["ls", "/"]):
        _, opened = run(rv, argv, [intercept_lib], cache)
        assert opened == {"pimg"}, (argv, opened)
    assert len(process_images(cache)) == 2


def test_no_process_image_with_a_log(rv: Riscv64Runner, intercept_lib: Path,
                                     tmp_path: Path) -> None:
    """INTERCEPT_LOG reports every object's plan: no image, whole or not."""
    cache = tmp_path / "cache"
    log = tmp_path / "log"
    for _ in range(2):
        _, opened = run(rv, ["true"], [intercept_lib], cache, INTERCEPT_LOG=str(log))
        assert "pimg" not in opened, opened
    assert process_images(cache) == []
    assert re.search(r"^patch \S+libc\.so\.6: ecalls \d+", log.read_text(), re.M)


def test_dlopen_after_a_replay(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                               hook_lib, tmp_path: Path) -> None:
    """Objects opened later are patched after a replay as after a plan:
    their trampolines go where the constructor's round left room (the
    regions it used taken, not written over: libt_rawsys.so lands next to
    libc, whose tail holds libc's own trampolines), so the late object's
    code (its jal names its trampoline's place) is the same after a planned
    and a replayed start, and every hooked call still works."""
    cache = tmp_path / "cache"
    argv = [str(test_programs / "t_dlopen"), str(test_programs / "libt_rawsys.so")]
    opened, codes = [], []
    for _ in range(2):
        out, seen = run(rv, argv, [core_lib, hook_lib("fake_getpid")], cache,
                        INTERCEPT_LIBS="libt_rawsys.so")
        fields = dict(kv.split("=") for kv in out.split())
        assert [fields[k] for k in ("lib", "reopened", "nslibc")] == [str(FAKE_PID)] * 3, out
        opened.append("pimg" in seen)
        codes.append(fields["code"])
    assert opened == [False, True], opened
    assert codes[0] == codes[1], codes


def test_python_imports_after_a_replay(rv: Riscv64Runner, intercept_lib: Path,
                                       tmp_path: Path) -> None:
    """python3 with INTERCEPT_ALL_OBJS: a replayed start, then every
    extension module patched as it arrives; the program's output is the
    bare one's."""
    cache = tmp_path / "cache"
    code = ("import json, decimal, hashlib, zlib\n"
            "print(hashlib.sha256(zlib.compress(json.dumps([str(decimal.Decimal(1)/7)])"
            ".encode())).hexdigest()[:8])")
    plain = rv.run(["python3", "-c", code])
    assert plain.returncode == 0, plain.describe()
    opened = []
    for _ in range(2):
        out, seen = run(rv, ["python3", "-c", code], [intercept_lib], cache,
                        INTERCEPT_ALL_OBJS="1")
        assert out == plain.out
        opened.append("pimg" in seen)
    assert opened == [False, True], opened


def test_late_object_placed_as_after_a_plan(rv: Riscv64Runner, test_programs: Path,
                                            core_lib: Path, hook_lib, tmp_path: Path) -> None:
    """After a replayed start, a library python3 opens later (ctypes: a
    dlopen) is patched with the same code as after a planned start (its
    jal names its trampoline's place: here memory claimed next to it), and
    reaches the hook."""
    cache = tmp_path / "cache"
    lib = test_programs / "libt_rawsys.so"
    code = (f"import ctypes; f = ctypes.CDLL({str(lib)!r}).rawsys_getpid\n"
            "print(ctypes.string_at(ctypes.cast(f, ctypes.c_void_p), 16).hex(), f())")
    preload = [core_lib, hook_lib("fake_getpid")]
    outs, opened = [], []
    for _ in range(2):
        out, seen = run(rv, ["python3", "-c", code], preload, cache,
                        INTERCEPT_LIBS="libt_rawsys.so")
        outs.append(out)
        opened.append("pimg" in seen)
    assert opened == [False, True], opened
    assert outs[0] == outs[1] and outs[0].endswith(f" {FAKE_PID}\n"), outs
    bare = rv.run(["python3", "-c", code])
    assert bare.returncode == 0 and bare.out.split()[0] != outs[0].split()[0], bare.describe()
