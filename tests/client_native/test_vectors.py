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
