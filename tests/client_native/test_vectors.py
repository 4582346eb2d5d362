"""The C distribution function (intercept/src/client/distribution.c, built
into libgkfs_intercept.so) agrees byte for byte with tests/vectors/ (which
gkfs_client/distribution.py produced): a small host C program checks every
row.  The same source file is compiled here as in the library."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_SRC = REPO / "intercept" / "src" / "client"
VECTORS = REPO / "tests" / "vectors" / "distribution.tsv"


def test_c_distribution_matches_vectors(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no host C compiler (cc/gcc): run deploy/setup-debian.sh", pytrace=False)
    exe = tmp_path / "vectors"
    build = subprocess.run(
        [cc, "-O2", "-Wall", "-Werror", "-I", str(CLIENT_SRC),
         str(Path(__file__).parent / "programs" / "vectors.c"),
         str(CLIENT_SRC / "distribution.c"), "-o", str(exe)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), str(VECTORS)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mismatches 0" in run.stdout
    rows = sum(1 for ln in VECTORS.read_text().splitlines() if ln and not ln.startswith("#"))
    assert f"rows {rows} " in run.stdout


LOCAL_VECTORS = REPO / "tests" / "vectors" / "local_stream.tsv"


def _prefix_cases() -> list[bytes]:
    """Prefixes at and around each limit of docs/protocol.md 1.1."""
    import struct

    from gkfs_client import local_stream, protocol
    big = 2 * protocol.DEFAULT_MAX_FRAME_SIZE

    def prefix(*lens: int, n: int | None = None) -> bytes:
        return struct.pack(f"<I{len(lens)}I", len(lens) if n is None else n, *lens)
    assert local_stream.MAX_PREFIX == 4 + 4 * protocol.MAX_FRAMES
    return [
        b"", b"\x01\x00\x00", prefix(n=0), prefix(n=protocol.MAX_FRAMES + 1), prefix(n=0xFFFFFFFF),
        prefix(*[0] * protocol.MAX_FRAMES), prefix(*[0] * protocol.MAX_FRAMES)[:-1],
        prefix(*[7] * 3)[:9], prefix(big), prefix(big + 1), prefix(5, big + 1),
        prefix(big // 2, big // 2), prefix(big // 2, big // 2 + 1), prefix(big, 1), prefix(0xFFFFFFFF),
    ]


def test_c_local_stream_matches_vectors(tmp_path: Path) -> None:
    """The C name and framing (intercept/src/client/local_stream.c) against
    tests/vectors/local_stream.tsv, and its verdict on prefixes at each
    limit against the Python decoder's (a stream either breaks a limit in
    both or in neither)."""
    from gkfs_client import local_stream
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.fail("no host C compiler (cc/gcc): run deploy/setup-debian.sh", pytrace=False)
    exe = tmp_path / "ls_vectors"
    build = subprocess.run(
        [cc, "-O2", "-Wall", "-Werror", "-I", str(CLIENT_SRC),
         str(Path(__file__).parent / "programs" / "local_stream_vectors.c"),
         str(CLIENT_SRC / "local_stream.c"), str(CLIENT_SRC / "distribution.c"), "-o", str(exe)],
        capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    cases = _prefix_cases()
    (tmp_path / "prefixes").write_text("".join(f"prefix {c.hex()}\n" for c in cases))
    run = subprocess.run([str(exe), str(LOCAL_VECTORS), str(tmp_path / "prefixes")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = sum(1 for ln in LOCAL_VECTORS.read_text().splitlines() if ln and not ln.startswith("#"))
    assert f"rows {rows} mismatches 0" in run.stdout
    verdicts = [ln.split() for ln in run.stdout.splitlines() if ln.startswith("prefix")]
    assert len(verdicts) == len(cases)
    for case, v in zip(cases, verdicts):
        c_broken = v[-2] == "-1"
        d = local_stream.Decoder()
        try:
            view = d.buffer()
            view[:len(case)] = case
            d.received(len(case))
            py_broken = False
        except local_stream.FramingError:
            py_broken = True
        assert c_broken == py_broken, (case[:16].hex(), v)
    # the cases do reach both verdicts
    assert {v[-2] for v in verdicts} >= {"-1", "0", "1"}
