"""Fixtures of the end-to-end suite: one local 3-daemon gkfs cluster per
session (daemons native on loopback, started by `gkfs-ctl cluster start`),
riscv64 programs under qemu-riscv64-static with libgkfs_intercept.so
preloaded and pointed at it, and the suite's own riscv64 programs
(deploy/build-e2e-programs.sh).

Each test works in its own directory of gkfs (``gkdir``, e.g.
/gkfs-e2e/test_tar) and its own local scratch directory (``local``); after
each test every daemon must still answer. Nothing here skips.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_harness import (BINFMT_ENTRY, QEMU, LocalCluster, Riscv64Preload, build_programs, need)
from gkfs_client import native_paths


@pytest.fixture(scope="session")
def sysroot() -> Path:
    need(os.access(QEMU, os.X_OK), f"{QEMU} missing: deploy/setup-debian.sh --no-pip")
    need(BINFMT_ENTRY.exists() and BINFMT_ENTRY.read_text().startswith("enabled"),
         f"{BINFMT_ENTRY} not registered/enabled: run deploy/riscv64-sysroot.sh")
    try:
        return native_paths.riscv64_sysroot()
    except (native_paths.NativeNotBuilt, subprocess.CalledProcessError) as exc:
        pytest.fail(f"riscv64 sysroot: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def preload_lib() -> Path:
    try:
        return native_paths.intercept_library("riscv64")
    except native_paths.NativeNotBuilt as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def programs(sysroot: Path) -> Path:
    return build_programs()


@pytest.fixture(scope="session")
def gkfs(tmp_path_factory) -> LocalCluster:
    c = LocalCluster(tmp_path_factory.mktemp("e2e-cluster")).start()
    need(not os.path.exists(c.mount), f"{c.mount} exists on the host: the suite needs a prefix only gkfs serves")
    yield c
    logs = c.daemon_logs()
    c.stop()
    if "Traceback" in logs:
        pytest.fail(f"a daemon logged a Python traceback during the e2e suite:\n{logs}", pytrace=False)


@pytest.fixture
def gkdir(gkfs: LocalCluster, request) -> str:
    """A fresh directory of gkfs for this test, as the program sees it."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    path = f"/{name}"
    if gkfs.client.exists(path):
        subprocess.run(["gkfs-ctl", "--hosts-file", str(gkfs.hosts_file), "ls", path], check=False)
        pytest.fail(f"gkfs already holds {path} (left by an earlier run of this session?)")
    gkfs.client.mkdir(path)
    yield f"{gkfs.mount}{path}"
    leaked = _host_leak(gkfs.mount)
    gkfs.check_alive()
    if leaked:
        pytest.fail(f"the test's programs wrote to the HOST's {gkfs.mount} instead of gkfs "
                    f"(removed again): {leaked}", pytrace=False)


def _host_leak(mount: str) -> list[str]:
    """Paths a program created on the host under the mount prefix (a hook
    that let the call through to the kernel); they are removed so the next
    test starts clean."""
    if not os.path.lexists(mount):
        return []
    found = [mount] + [os.path.join(d, n) for d, ds, fs in os.walk(mount) for n in ds + fs]
    shutil.rmtree(mount) if os.path.isdir(mount) and not os.path.islink(mount) else os.unlink(mount)
    return found[:20]


@pytest.fixture
def local(tmp_path: Path) -> Path:
    d = tmp_path / "local"
    d.mkdir()
    return d


@pytest.fixture
def rv(sysroot: Path, preload_lib: Path, gkfs: LocalCluster, tmp_path: Path) -> Riscv64Preload:
    work = tmp_path / "work"
    logs = tmp_path / "hooklogs"
    work.mkdir()
    logs.mkdir()
    return Riscv64Preload(sysroot, preload_lib, gkfs, work, logs)
