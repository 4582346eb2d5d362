"""Calls the hook never wants (issue 9, part 4: interception overhead).

The entry's fast path sends a call nobody wants to the kernel before it saves
anything (registers preserved, 32 bytes of stack instead of the whole frame),
and a site whose static number the gkfs client never wants stays the
program's own ecall when the plan cache is on (the declaration is made
before patching).  A syscall_intercept-API hook declares nothing and sees
every call; INTERCEPT_LOG sees every call too.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rv_harness import Riscv64Runner


# Entry fast path (issue 9, part 4).  t_regs ... depth prints how far below
# the stub's sp the patched ecall wrote: the trampoline's 16 bytes plus
# 16 for the fast path's two scratch registers, or the entry's whole frame
# (> 300 bytes) for a call that reaches the dispatcher.
FAST_PATH_DEPTH = 32


def _depth(res) -> int:
    line = next(ln for ln in res.out.splitlines() if ln.startswith("stack below the call: "))
    return int(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize("call,fast", [
    ("getppid", True),   # never wanted by the gkfs client
    ("getpid", True),
    ("write", True),     # a descriptor call on a descriptor that is not gkfs
    ("close", True),     # a descriptor the client keeps no record of (close(57))
])
def test_gkfs_client_unwanted_calls_take_the_fast_path(rv: Riscv64Runner, test_programs: Path,
                                                       intercept_lib: Path, call: str,
                                                       fast: bool) -> None:
    prog = str(test_programs / "t_regs")
    plain = rv.run([prog, call, "depth"])
    assert plain.returncode == 0 and _depth(plain) == 0, plain.describe()
    res = rv.run([prog, call, "depth"], preload=[intercept_lib],
                 env={"INTERCEPT_ALL_OBJS": "1"})
    assert res.returncode == 0 and res.out.endswith("\nregisters preserved\n"), res.describe()
    # same result as the kernel's own
    assert res.out.splitlines()[1] == plain.out.splitlines()[1] or call == "getpid", \
        (plain.describe(), res.describe())
    if fast:
        assert _depth(res) == FAST_PATH_DEPTH, res.describe()
    else:
        assert _depth(res) > 300, res.describe()


@pytest.mark.parametrize("env", [{}, {"INTERCEPT_LOG": "LOGFILE"}])
def test_undeclared_hook_and_logging_see_every_call(rv: Riscv64Runner, test_programs: Path,
                                                    core_lib: Path, intercept_lib: Path,
                                                    hook_lib, env: dict, tmp_path: Path) -> None:
    """A syscall_intercept-API hook declares nothing: it sees every call,
    getppid included (the full frame is built); with INTERCEPT_LOG the gkfs
    client's unwanted calls go through the dispatcher too, to be logged."""
    prog = str(test_programs / "t_regs")
    env = {k: str(tmp_path / "log") if v == "LOGFILE" else v for k, v in env.items()}
    preload = [core_lib, hook_lib("clobber")] if not env else [intercept_lib]
    res = rv.run([prog, "getppid", "depth"], preload=preload,
                 env={"INTERCEPT_ALL_OBJS": "1", **env})
    assert res.returncode == 0 and res.out.endswith("\nregisters preserved\n"), res.describe()
    assert _depth(res) > 300, res.describe()
    if env:
        assert "getppid(" in (tmp_path / "log").read_text()


def _sites(res) -> dict[str, str]:
    return dict(ln.split(": ", 1) for ln in res.out.splitlines())


def test_never_wanted_static_sites_stay_unpatched(rv: Riscv64Runner, test_programs: Path,
                                                  intercept_lib: Path, core_lib: Path,
                                                  hook_lib) -> None:
    # getppid, getpid: never wanted; dup, chdir: always; fchmod: on gkfs
    # descriptors (the entry decides, so the site is patched)
    prog = [str(test_programs / "t_site"), "getppid", "getpid", "dup", "chdir", "fchmod"]
    plain = rv.run(prog)
    assert plain.returncode == 0 and set(_sites(plain).values()) == {"ecall"}, plain.describe()
    cache = {"INTERCEPT_PLAN_CACHE": str(rv.workdir / "plans")}
    # gkfs client, plan cache on: the first start plans in full and writes
    # the cache, the second reads it; both leave getppid/getpid alone
    for _ in range(2):
        res = rv.run(prog, preload=[intercept_lib], env=cache)
        assert _sites(res) == {"getppid": "ecall", "getpid": "ecall", "dup": "patched",
                               "chdir": "patched", "fchmod": "patched"}, res.describe()
    assert list((rv.workdir / "plans").iterdir())
    # without the cache the static numbers are not known (sites found by a
    # length sweep only): every site is patched, the entry's fast path
    # answers the unwanted ones
    res = rv.run(prog, preload=[intercept_lib], env={"INTERCEPT_PLAN_CACHE": "0"})
    assert set(_sites(res).values()) == {"patched"}, res.describe()
    # logging sees every call; an API hook declares nothing
    res = rv.run(prog, preload=[intercept_lib],
                 env={**cache, "INTERCEPT_LOG": str(rv.workdir / "log")})
    assert set(_sites(res).values()) == {"patched"}, res.describe()
    res = rv.run(prog, preload=[core_lib, hook_lib("clobber")], env=cache)
    assert set(_sites(res).values()) == {"patched"}, res.describe()


def test_getppid_correct_with_unpatched_site(rv: Riscv64Runner, test_programs: Path,
                                             intercept_lib: Path) -> None:
    prog = [str(test_programs / "t_regs"), "getppid"]
    plain = rv.run(prog)
    cache = {"INTERCEPT_PLAN_CACHE": str(rv.workdir / "plans"), "INTERCEPT_ALL_OBJS": "1"}
    for _ in range(2):
        res = rv.run(prog, preload=[intercept_lib], env=cache)
        assert res.returncode == 0 and res.out == plain.out, (plain.describe(), res.describe())
