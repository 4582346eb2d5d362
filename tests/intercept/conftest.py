"""Fixtures of the interception-core suites: the riscv64 sysroot, the native
build directories, and a runner for riscv64 programs under qemu user mode.

Missing pieces (sysroot, qemu, a build product, binfmt) fail the test that
needs them, loudly and with the command that provides them; nothing here
skips. The suites that need only the host build (decoder, planner) never
touch the riscv64 fixtures.

Programs run under the statically linked qemu with QEMU_LD_PREFIX set to the
sysroot and PATH pointing at the sysroot's bin directories, so a riscv64
program that execs a child by name gets the riscv64 one (binfmt_misc hands
it to the same qemu). qemu does not translate absolute paths in execve, so a
test must not make a riscv64 program exec /bin/sh or similar.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gkfs_client import native_paths
from rv_harness import BINFMT_ENTRY, QEMU, Riscv64Runner, need

# --- session fixtures --------------------------------------------------------

@pytest.fixture(scope="session")
def qemu() -> str:
    need(os.access(QEMU, os.X_OK),
          f"{QEMU} missing: install qemu-user-static (deploy/setup-debian.sh --no-pip)")
    return QEMU


@pytest.fixture(scope="session")
def sysroot() -> Path:
    try:
        return native_paths.riscv64_sysroot()
    except (native_paths.NativeNotBuilt, subprocess.CalledProcessError) as exc:
        pytest.fail(f"riscv64 sysroot: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def binfmt(qemu: str) -> Path:
    """The binfmt_misc entry that lets riscv64 programs exec riscv64 children."""
    need(BINFMT_ENTRY.exists(),
          f"{BINFMT_ENTRY} not registered: run deploy/riscv64-sysroot.sh (it registers "
          f"the static qemu for riscv64 with binfmt_misc)")
    text = BINFMT_ENTRY.read_text()
    need(text.startswith("enabled"), f"{BINFMT_ENTRY} is disabled:\n{text}")
    return BINFMT_ENTRY


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return native_paths.build_dir()


@pytest.fixture(scope="session")
def riscv64_build() -> Path:
    d = native_paths.riscv64_build_dir()
    need((d / "CMakeCache.txt").is_file(),
          f"no riscv64 build at {d}: run deploy/build-native.sh riscv64")
    return d


@pytest.fixture(scope="session")
def test_programs(riscv64_build: Path) -> Path:
    """Directory of the riscv64 C test programs and example hooks."""
    d = riscv64_build / "tests"
    need((d / "t_clone").is_file(),
          f"riscv64 test programs not built in {d}: run deploy/build-native.sh riscv64")
    return d


@pytest.fixture(scope="session")
def intercept_lib(riscv64_build: Path) -> Path:
    """libgkfs_intercept.so: the core with the pass-through logging hook."""
    try:
        return native_paths.intercept_library("riscv64")
    except native_paths.NativeNotBuilt as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def core_lib(riscv64_build: Path) -> Path:
    """libsyscall_intercept.so: the core alone, for example hook libraries."""
    try:
        return native_paths.intercept_library("riscv64", core=True)
    except native_paths.NativeNotBuilt as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def hook_lib(test_programs: Path):
    """hook_lib('fake_getpid') -> path of libhook_fake_getpid.so."""
    def get(name: str) -> Path:
        p = test_programs / f"libhook_{name}.so"
        need(p.is_file(), f"{p} not built: run deploy/build-native.sh riscv64")
        return p
    return get


# --- per-test fixtures -------------------------------------------------------

@pytest.fixture
def rv(sysroot: Path, qemu: str, binfmt: Path, tmp_path: Path) -> Riscv64Runner:
    """Runner for riscv64 programs; its HOME, TMPDIR and cwd are tmp_path/work."""
    work = tmp_path / "work"
    work.mkdir()
    return Riscv64Runner(sysroot, work)


@pytest.fixture
def log_prefix(tmp_path: Path) -> Path:
    """A directory for INTERCEPT_LOG files; returns the directory."""
    d = tmp_path / "logs"
    d.mkdir()
    return d


