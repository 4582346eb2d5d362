"""Fixtures of the native client's quick tests: a local 3-daemon cluster
(`gkfs-ctl cluster start`, small chunks so files spread over daemons), a
riscv64 build of the test programs in programs/ (cross compiler, run under
qemu-riscv64-static with libgkfs_intercept.so preloaded).  Nothing here
skips: a missing tool or build product fails the test that needs it."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gkfs_client import native_paths
from gkfs_client.client import Client

QEMU = "/usr/bin/qemu-riscv64-static"
MOUNT = "/gkfs-native-test"     # does not exist on the host
CHUNK_SIZE = 64 * 1024
HERE = Path(__file__).resolve().parent


def need(cond: bool, what: str) -> None:
    if not cond:
        pytest.fail(what, pytrace=False)


class Cluster:
    def __init__(self, base: Path):
        self.base = base
        self.hosts_file = base / "hosts"
        self.mount = MOUNT

    def start(self) -> "Cluster":
        cp = subprocess.run(["gkfs-ctl", "--hosts-file", str(self.hosts_file), "cluster", "start",
                             "-n", "3", "--rootdir", str(self.base / "root"),
                             "--chunk-size", str(CHUNK_SIZE), "--mount", MOUNT],
                            capture_output=True, text=True, timeout=120)
        need(cp.returncode == 0, f"gkfs-ctl cluster start failed:\n{cp.stdout}\n{cp.stderr}")
        self.client = Client(self.hosts_file)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        subprocess.run(["gkfs-ctl", "--hosts-file", str(self.hosts_file), "cluster", "stop"],
                       capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def gk_cluster(tmp_path_factory):
    need(shutil.which("gkfs-ctl") is not None, "gkfs-ctl not on PATH: pip install -e .")
    c = Cluster(tmp_path_factory.mktemp("native-cluster")).start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def sysroot() -> Path:
    need(os.access(QEMU, os.X_OK), f"{QEMU} missing: deploy/setup-debian.sh --no-pip")
    try:
        return native_paths.riscv64_sysroot()
    except (native_paths.NativeNotBuilt, subprocess.CalledProcessError) as exc:
        pytest.fail(f"riscv64 sysroot: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def preload() -> Path:
    try:
        return native_paths.intercept_library("riscv64")
    except native_paths.NativeNotBuilt as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rv_program(tmp_path_factory):
    """rv_program('smoke') -> path of programs/smoke.c built for riscv64."""
    cc = shutil.which("riscv64-linux-gnu-gcc")
    need(cc is not None, "riscv64-linux-gnu-gcc missing: deploy/setup-debian.sh --no-pip")
    out = tmp_path_factory.mktemp("rvbin")

    def build(name: str) -> Path:
        exe = out / name
        if not exe.exists():
            cp = subprocess.run([cc, "-O2", "-Wall", str(HERE / "programs" / f"{name}.c"), "-o", str(exe)],
                                capture_output=True, text=True)
            need(cp.returncode == 0, f"building {name}.c for riscv64 failed:\n{cp.stderr}")
        return exe
    return build


@pytest.fixture
def run_rv(sysroot: Path, preload: Path, gk_cluster: Cluster):
    """run_rv(argv, env=...) -> CompletedProcess of a riscv64 program with the
    hook preloaded and pointed at the test cluster."""
    def run(argv, extra_env=None, timeout=180, preload_lib=True):
        env = {"PATH": f"{sysroot}/usr/bin:{sysroot}/usr/sbin", "QEMU_LD_PREFIX": str(sysroot),
               "LC_ALL": "C", "LIBGKFS_HOSTS_FILE": str(gk_cluster.hosts_file),
               "LIBGKFS_RPC_TIMEOUT_MS": "20000", "LIBGKFS_LOG": "errors"}
        if preload_lib:
            env["LD_PRELOAD"] = str(preload)
        env.update(extra_env or {})
        return subprocess.run([QEMU, *map(str, argv)], env=env, capture_output=True,
                              timeout=timeout)
    return run
