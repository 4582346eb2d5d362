"""gkfs-ctl lib-path (issue 3, deliverable 1): prints the built library for
an architecture; says clearly, with a non-zero exit, when it is not built
or the architecture has no port."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gkfs_client import native_paths


def ctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gkfs_client.ctl.main", "lib-path", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=60)


def test_riscv64_paths(intercept_lib: Path, core_lib: Path) -> None:
    res = ctl("--arch", "riscv64")
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == intercept_lib and intercept_lib.name == "libgkfs_intercept.so"
    assert intercept_lib.is_absolute() and intercept_lib.is_file()
    res = ctl("--arch", "riscv64", "--core")
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()) == core_lib and core_lib.name == "libsyscall_intercept.so"


def test_host_default() -> None:
    res = ctl()
    if native_paths.host_arch() in native_paths.INTERCEPT_ARCHES:
        assert res.returncode == 0 and Path(res.stdout.strip()).is_file(), res.stderr
    else:
        assert res.returncode == 1 and res.stdout == ""
        assert f"no {native_paths.host_arch()} port" in res.stderr, res.stderr
        assert "--arch riscv64" in res.stderr


def test_not_built_is_a_clear_error(tmp_path: Path) -> None:
    res = ctl("--arch", "riscv64", env={"GKFS_BUILD_DIR": str(tmp_path)})
    assert res.returncode == 1 and res.stdout == ""
    assert "not built yet" in res.stderr and "deploy/build-native.sh riscv64" in res.stderr


def test_build_dir_override(tmp_path: Path) -> None:
    lib = tmp_path / "riscv64" / "libgkfs_intercept.so"
    lib.parent.mkdir()
    lib.write_bytes(b"\x7fELF")
    res = ctl("--arch", "riscv64", env={"GKFS_BUILD_DIR": str(tmp_path)})
    assert res.returncode == 0 and Path(res.stdout.strip()) == lib.resolve(), res.stderr
