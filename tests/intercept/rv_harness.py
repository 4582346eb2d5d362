"""Helpers of the interception-core suites (imported by conftest.py and the
tests): running riscv64 programs under qemu user mode and reading the
core's INTERCEPT_LOG output. See conftest.py for the fixtures."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

QEMU = "/usr/bin/qemu-riscv64-static"
BINFMT_ENTRY = Path("/proc/sys/fs/binfmt_misc/qemu-riscv64")
# A pass-through hook only logs; anything past this is a hang, not slowness.
DEFAULT_TIMEOUT = 120

# "<pid>.<tid> name(args) = result ..." (intercept/src/runtime/log.c)
LOG_LINE = re.compile(r"^(\d+)\.(\d+) (\w+)\((.*?)\) = (-?\d+|\?)")


def need(cond: bool, what: str) -> None:
    """Fail (never skip) the current test when a prerequisite is missing."""
    if not cond:
        pytest.fail(what, pytrace=False)


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    def describe(self) -> str:
        return (f"{' '.join(self.argv)}\n  exit {self.returncode}\n"
                f"  stdout: {self.out[-2000:]!r}\n  stderr: {self.err[-2000:]!r}")


@dataclass
class SyscallLog:
    """Parsed INTERCEPT_LOG output (one or many files)."""
    lines: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, *paths: Path) -> "SyscallLog":
        lines: list[str] = []
        for p in paths:
            lines += p.read_text(errors="replace").splitlines()
        return cls(lines)

    def calls(self) -> list[tuple[int, int, str, str]]:
        out = []
        for ln in self.lines:
            m = LOG_LINE.match(ln)
            if m:
                out.append((int(m[1]), int(m[2]), m[3], m[5]))
        return out

    def names(self) -> set[str]:
        return {c[2] for c in self.calls()}

    def pids(self) -> set[int]:
        return {c[0] for c in self.calls()}


class Riscv64Runner:
    """Runs riscv64 programs under qemu-riscv64-static with the sysroot."""

    def __init__(self, sysroot: Path, workdir: Path):
        self.sysroot = sysroot
        self.workdir = workdir

    def bin(self, name: str) -> str:
        """Absolute path of a program in the sysroot (usr/bin, usr/sbin)."""
        for d in ("usr/bin", "usr/sbin"):
            p = self.sysroot / d / name
            if p.exists():
                return str(p)
        pytest.fail(f"{name} not found in the riscv64 sysroot {self.sysroot}: "
                    f"rebuild it with deploy/riscv64-sysroot.sh --force", pytrace=False)

    def env(self, preload: list[Path | str] | None = None,
            extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": f"{self.sysroot}/usr/bin:{self.sysroot}/usr/sbin",
            "QEMU_LD_PREFIX": str(self.sysroot),
            "LC_ALL": "C",
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir),
        }
        if preload:
            env["LD_PRELOAD"] = ":".join(str(p) for p in preload)
        if extra:
            env.update(extra)
        return env

    def run(self, argv: list[str], preload: list[Path | str] | None = None,
            env: dict[str, str] | None = None, cwd: Path | str | None = None,
            stdin: bytes | None = None, timeout: float = DEFAULT_TIMEOUT) -> Result:
        """argv[0] is a riscv64 program: a sysroot name ('ls') or a path."""
        prog = argv[0] if "/" in argv[0] else self.bin(argv[0])
        full = [QEMU, prog, *argv[1:]]
        t0 = time.monotonic()
        try:
            cp = subprocess.run(full, input=stdin if stdin is not None else b"",
                                capture_output=True, env=self.env(preload, env),
                                cwd=str(cwd or self.workdir), timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"timed out after {timeout} s: {' '.join(full)}\n"
                        f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}", pytrace=False)
        return Result([prog, *argv[1:]], cp.returncode, cp.stdout, cp.stderr,
                      time.monotonic() - t0)


def log_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file())


def tool(name: str) -> str:
    """A host tool the suite needs; fails loudly when missing."""
    p = shutil.which(name)
    need(p is not None, f"host tool {name} not found: run deploy/setup-debian.sh")
    return p
