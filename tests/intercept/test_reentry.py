"""Issue 11 (1): a hook never re-enters itself.  System calls made while a
thread runs the hook, including those of ld.so resolving a lazily bound
symbol for the hook, go to the kernel.

libhook_lazy_logger.so (intercept/tests/hook_lazy_logger.c) is linked with
lazy binding and calls snprintf/strlen/memcpy/strchr for every call; with
glibc 2.41 resolving memcpy's IFUNC makes a riscv_hwprobe system call from
inside ld.so, which before the guard came back into the hook, which called
the still unbound memcpy again, without end.  It is run on both glibcs:
Debian bookworm's cross glibc 2.36 and the sysroot's 2.41.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rv_harness import Riscv64Runner

CROSS_GLIBC = "/usr/riscv64-linux-gnu"


def glibc_env(which: str, sysroot: Path) -> dict[str, str]:
    """QEMU_LD_PREFIX for one of the two glibcs the core is tested on."""
    return {"QEMU_LD_PREFIX": CROSS_GLIBC if which == "2.36" else str(sysroot)}


@pytest.mark.parametrize("glibc", ["2.36", "2.41"])
def test_lazy_binding_hook_does_not_reenter(glibc: str, rv: Riscv64Runner, sysroot: Path,
                                            test_programs: Path, hook_lib) -> None:
    env = glibc_env(glibc, sysroot)
    env.pop("LD_BIND_NOW", None)
    res = rv.run([str(test_programs / "t_getpid")], preload=[hook_lib("lazy_logger")],
                 env=env, timeout=60)
    assert res.returncode == 0, res.describe()
    m = re.search(r"lazy-hook calls=(\d+) depth-max=(\d+)", res.err)
    assert m, res.describe()
    assert int(m[1]) > 0 and m[2] == "1", res.describe()
    assert re.match(r"getpid=(\d+) syscall=\1 agree\n", res.out), res.describe()
    assert res.err.count("lazy-hook: getpid -> ") == 2, res.describe()


def test_lazy_binding_hook_real_program(rv: Riscv64Runner, hook_lib) -> None:
    """The original's syscall_logger case: `true` and `ls` with a lazily
    bound hook (sysroot glibc 2.41)."""
    res = rv.run(["true"], preload=[hook_lib("lazy_logger")], timeout=60)
    assert res.returncode == 0 and "lazy-hook calls=" in res.err, res.describe()
    res = rv.run(["ls", "/"], preload=[hook_lib("lazy_logger")], timeout=60)
    assert res.returncode == 0 and "usr\n" in res.out, res.describe()
    assert "depth-max=1" in res.err, res.describe()
