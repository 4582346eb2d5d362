"""Helpers of the end-to-end suite: a local gkfs cluster on loopback, and a
runner that starts riscv64 programs under qemu-riscv64-static with
libgkfs_intercept.so preloaded, pointed at that cluster.

Checks go through the Python Client (what the daemons hold) and through the
daemons' own root directories (which daemon has chunk files of a file), so
a program that silently wrote to the local disk instead of gkfs fails.

Nothing here skips: a missing tool, sysroot or build product fails the test
with the command that provides it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gkfs_client.client import Client

QEMU = "/usr/bin/qemu-riscv64-static"
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-riscv64")
REPO = Path(__file__).resolve().parents[2]

# Mount prefix of the test cluster: a path that does not exist on the host,
# so nothing can reach it except through the hook.
MOUNT = "/gkfs-e2e"
CHUNK_SIZE = 64 * 1024  # small chunks: even small files spread over daemons
N_DAEMONS = 3
# Seconds a riscv64 program may take. A hang is a bug, not slowness: the
# hook must turn an unreachable daemon into EIO after LIBGKFS_RPC_TIMEOUT.
PROGRAM_TIMEOUT = 180
RPC_TIMEOUT_S = 20

# Environment of the preload (names from intercept/README.md, "Client hook").
ENV_HOSTS_FILE = "LIBGKFS_HOSTS_FILE"
ENV_MOUNT = "LIBGKFS_MOUNT"
ENV_LOG = "LIBGKFS_LOG"
ENV_LOG_OUTPUT = "LIBGKFS_LOG_OUTPUT"
ENV_RPC_TIMEOUT = "LIBGKFS_RPC_TIMEOUT"


def need(cond: bool, what: str) -> None:
    """Fail (never skip) when a prerequisite is missing."""
    if not cond:
        pytest.fail(what, pytrace=False)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    log: str = ""

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    def describe(self) -> str:
        text = (f"{' '.join(self.argv)}\n  exit {self.returncode} after {self.seconds:.1f} s\n"
                f"  stdout: {self.out[-3000:]!r}\n  stderr: {self.err[-3000:]!r}")
        if self.log:
            text += f"\n  hook log (tail):\n{self.log[-4000:]}"
        return text

    def ok(self) -> "Result":
        """Fail the test unless the program exited 0."""
        if self.returncode != 0:
            pytest.fail(f"riscv64 program failed:\n{self.describe()}", pytrace=False)
        return self


# ---------------------------------------------------------------- cluster

class LocalCluster:
    """`gkfs-ctl cluster start -n 3` under a scratch dir, its own hosts file."""

    def __init__(self, base: Path, n: int = N_DAEMONS, chunk_size: int = CHUNK_SIZE, mount: str = MOUNT):
        self.base = base
        self.n = n
        self.chunk_size = chunk_size
        self.mount = mount
        self.hosts_file = base / "hosts"
        self.rootdir = base / "daemons"
        self.env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(self.hosts_file))
        self.rootdirs: list[Path] = []
        self._client: Client | None = None

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        exe = shutil.which("gkfs-ctl")
        need(exe is not None, "gkfs-ctl not on PATH: pip install -e . (deploy/setup-debian.sh)")
        return subprocess.run([exe, "--hosts-file", str(self.hosts_file), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> "LocalCluster":
        self.base.mkdir(parents=True, exist_ok=True)
        cp = self.ctl("cluster", "start", "-n", str(self.n), "--rootdir", str(self.rootdir),
                      "--chunk-size", str(self.chunk_size), "--mount", self.mount)
        need(cp.returncode == 0, f"gkfs-ctl cluster start failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
        with Client(self.hosts_file, timeout=RPC_TIMEOUT_S) as c:
            statuses = c.status()
        for s in statuses:
            need(not isinstance(s, OSError), f"daemon down right after start: {s}")
        # Placement index i is the i-th host by id; its own rootdir as it reports it.
        self.rootdirs = [Path(s["rootdir"]) for s in statuses]
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None
        cp = self.ctl("cluster", "stop")
        if cp.returncode != 0:
            pytest.fail(f"gkfs-ctl cluster stop failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.hosts_file, timeout=RPC_TIMEOUT_S)
        return self._client

    def daemon_logs(self) -> str:
        out = []
        for p in sorted(self.rootdir.glob("daemon-*.log")):
            out.append(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        """Every daemon still answers (a test must not have crashed one)."""
        with Client(self.hosts_file, timeout=10) as c:
            bad = [f"daemon {i}: {s}" for i, s in enumerate(c.status(timeout=10)) if isinstance(s, OSError)]
        if bad:
            pytest.fail("daemon(s) down after the test:\n" + "\n".join(bad) + "\n" + self.daemon_logs(),
                        pytrace=False)

    # -- where data is ------------------------------------------------------
    def gk(self, mounted: str) -> str:
        """'/gkfs-e2e/a/b' -> '/a/b' (the path inside gkfs)."""
        assert mounted == self.mount or mounted.startswith(self.mount + "/"), mounted
        return mounted[len(self.mount):] or "/"

    def chunk_holders(self, mounted: str) -> set[int]:
        """Indices of the daemons whose root dir holds chunk files of the file,
        read from their disks (daemon/chunkstore.py layout)."""
        rec = self.client.stat_record(self.gk(mounted))
        key_dir = hashlib.sha256(rec["data_key"].encode()).hexdigest()
        return {i for i, root in enumerate(self.rootdirs)
                if any((root / "chunks" / key_dir).glob("*"))}

    def assert_spread(self, files: list[str], at_least: int = 2) -> set[int]:
        holders: set[int] = set()
        for f in files:
            holders |= self.chunk_holders(f)
        assert len(holders) >= at_least, (
            f"data of {files} is on daemons {sorted(holders)} only; expected >= {at_least} of {self.n}")
        return holders

    def read(self, mounted: str) -> bytes:
        return self.client.read_file(self.gk(mounted))

    def listdir(self, mounted: str) -> list[str]:
        return sorted(self.client.listdir(self.gk(mounted)))

    def exists(self, mounted: str) -> bool:
        return self.client.exists(self.gk(mounted))

    def walk(self, mounted: str) -> dict[str, bytes | None]:
        """{relative path: content (None for a directory)} of a gkfs tree."""
        import stat as st
        out: dict[str, bytes | None] = {}
        root = self.gk(mounted)

        def rec(d: str, rel: str) -> None:
            for name in sorted(self.client.listdir(d)):
                p = f"{d.rstrip('/')}/{name}"
                r = f"{rel}{name}"
                mode = self.client.lstat(p).st_mode
                if st.S_ISDIR(mode):
                    out[r] = None
                    rec(p, r + "/")
                else:
                    out[r] = self.client.read_file(p)
        rec(root, "")
        return out


def local_tree(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = None if p.is_dir() else p.read_bytes()
    return out


# ---------------------------------------------------------------- runner

class Riscv64Preload:
    """Runs riscv64 programs under qemu with libgkfs_intercept.so preloaded.

    Environment of every run: PATH = the sysroot's bin dirs (children exec'd
    by name are riscv64 too, via binfmt), QEMU_LD_PREFIX = sysroot, the hook's
    variables for the cluster, and Open MPI's prefix variables (its mpirun
    execs prterun by absolute install path, which qemu does not translate).
    """

    def __init__(self, sysroot: Path, lib: Path, cluster: LocalCluster | None, workdir: Path, logdir: Path):
        self.sysroot = sysroot
        self.lib = lib
        self.cluster = cluster
        self.workdir = workdir
        self.logdir = logdir
        self.runs = 0

    def bin(self, name: str) -> str:
        for d in ("usr/bin", "usr/sbin"):
            p = self.sysroot / d / name
            if p.exists():
                return str(p)
        pytest.fail(f"{name} not found in the riscv64 sysroot {self.sysroot}: "
                    f"deploy/riscv64-sysroot.sh --force", pytrace=False)

    def env(self, preload: bool = True, extra: dict[str, str] | None = None,
            log_file: Path | None = None) -> dict[str, str]:
        s = self.sysroot
        env = {
            "PATH": f"{s}/usr/bin:{s}/usr/sbin",
            "QEMU_LD_PREFIX": str(s),
            "LC_ALL": "C",
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
            "OPAL_PREFIX": f"{s}/usr",
            "PRTE_PREFIX": f"{s}/usr",
            "PMIX_PREFIX": f"{s}/usr",
            "OMPI_MCA_btl": "self,sm",
            "OMPI_MCA_pml": "ob1",
            "PRTE_MCA_prte_silence_shared_fs": "1",
        }
        if preload:
            env["LD_PRELOAD"] = str(self.lib)
            if self.cluster is not None:
                env[ENV_HOSTS_FILE] = str(self.cluster.hosts_file)
                env[ENV_MOUNT] = self.cluster.mount
                env[ENV_RPC_TIMEOUT] = str(RPC_TIMEOUT_S)
                if log_file is not None:
                    env[ENV_LOG] = "errors"
                    # trailing '-': one file per process (pid appended)
                    env[ENV_LOG_OUTPUT] = str(log_file) + "-"
        if extra:
            env.update(extra)
        return env

    def run(self, argv: list[str], *, preload: bool = True, env: dict[str, str] | None = None,
            cwd: Path | str | None = None, stdin: bytes | None = None,
            timeout: float = PROGRAM_TIMEOUT) -> Result:
        """argv[0]: a sysroot program name ('cp') or a path to a riscv64 binary."""
        prog = argv[0] if "/" in argv[0] else self.bin(argv[0])
        self.runs += 1
        log_file = self.logdir / f"run{self.runs:03d}-{Path(prog).name}.log"
        full = [QEMU, prog, *argv[1:]]
        t0 = time.monotonic()
        try:
            cp = subprocess.run(full, input=stdin if stdin is not None else b"", capture_output=True,
                                env=self.env(preload, env, log_file), cwd=str(cwd or self.workdir),
                                timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            log = _read_logs(self.logdir, log_file)
            pytest.fail(f"timed out after {timeout} s (a hang): {' '.join(full)}\n"
                        f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}\nhook log:\n{log[-4000:]}",
                        pytrace=False)
        return Result([Path(prog).name, *argv[1:]], cp.returncode, cp.stdout, cp.stderr,
                      time.monotonic() - t0, _read_logs(self.logdir, log_file))

    def sh(self, script: str, **kw) -> Result:
        """A dash script (dash -c); forks and execs riscv64 children."""
        return self.run(["dash", "-e", "-c", script], **kw)


def _read_logs(logdir: Path, log_file: Path) -> str:
    # The hook may add the pid to the name (one file per process).
    parts = []
    for p in sorted(logdir.glob(log_file.name + "*")):
        parts.append(p.read_text(errors="replace"))
    return "\n".join(parts)


def build_programs() -> Path:
    """deploy/build-e2e-programs.sh (incremental); returns the output dir."""
    cp = subprocess.run(["bash", str(REPO / "deploy" / "build-e2e-programs.sh")],
                        capture_output=True, text=True, timeout=600)
    need(cp.returncode == 0, f"deploy/build-e2e-programs.sh failed:\n{cp.stdout}\n{cp.stderr}")
    out = Path(cp.stdout.strip().splitlines()[-1])
    for name in ("mpi_io", "threads_io", "fsbench", "hdf5_rw"):
        need((out / name).is_file(), f"{out / name} not built by deploy/build-e2e-programs.sh")
    return out


def parse_json_line(text: str) -> dict:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in {text!r}")
