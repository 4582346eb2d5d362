"""A patched ecall may clobber nothing (issue 3: "the kernel preserves every
register but a0, so a patch may clobber nothing"): t_regs makes a system
call with every register holding a pattern, from an ecall in the executable
(patched with INTERCEPT_ALL_OBJS=1), and checks them all afterwards, the
floating-point registers included. hook_clobber overwrites every register a
C function may overwrite, as compiled hook code may; real programs must run
unchanged under it too.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rv_harness import Riscv64Runner

FAKE_PID = 424242


def test_registers_preserved_hooked_call(rv: Riscv64Runner, test_programs: Path,
                                         core_lib: Path, hook_lib) -> None:
    prog = str(test_programs / "t_regs")
    plain = rv.run([prog])
    assert plain.returncode == 0 and "registers preserved" in plain.out, plain.describe()
    # The fake pid proves the executable's ecall went through the core.
    res = rv.run([prog], preload=[core_lib, hook_lib("fake_getpid")],
                 env={"INTERCEPT_ALL_OBJS": "1"})
    assert res.out == f"a0={FAKE_PID}\nregisters preserved\n", res.describe()
    assert res.returncode == 0


@pytest.mark.parametrize("call", ["getpid", "getppid"])
def test_registers_preserved_with_clobbering_hook(rv: Riscv64Runner, test_programs: Path,
                                                  core_lib: Path, hook_lib, call: str) -> None:
    prog = str(test_programs / "t_regs")
    plain = rv.run([prog, call])
    res = rv.run([prog, call], preload=[core_lib, hook_lib("clobber")],
                 env={"INTERCEPT_ALL_OBJS": "1"})
    assert res.returncode == 0 and res.out.endswith("\nregisters preserved\n"), res.describe()
    if call == "getppid":  # same parent (this test) in both runs
        assert res.out == plain.out, (plain.describe(), res.describe())
    else:
        assert int(res.out.split()[0].removeprefix("a0=")) > 0, res.describe()


def test_registers_preserved_logging_core(rv: Riscv64Runner, test_programs: Path,
                                          intercept_lib: Path, tmp_path: Path) -> None:
    prog = str(test_programs / "t_regs")
    res = rv.run([prog, "getppid"], preload=[intercept_lib],
                 env={"INTERCEPT_ALL_OBJS": "1", "INTERCEPT_LOG": str(tmp_path / "log")})
    assert res.returncode == 0 and "registers preserved" in res.out, res.describe()
    assert "getppid(" in (tmp_path / "log").read_text()


@pytest.mark.parametrize("argv", [
    ["sha256sum", "big.bin"],
    ["sort", "-r", "lines.txt"],
    ["python3", "-c", "import threading,hashlib\n"
     "r=[]\n"
     "def w(i): r.append(hashlib.sha1(open('big.bin','rb').read()[i::4]).hexdigest())\n"
     "t=[threading.Thread(target=w,args=(i,)) for i in range(4)]\n"
     "[x.start() for x in t]; [x.join() for x in t]; print(sorted(r))"],
], ids=["sha256sum", "sort", "python3-threads"])
def test_real_programs_under_clobbering_hook(rv: Riscv64Runner, core_lib: Path, hook_lib,
                                             argv: list[str]) -> None:
    (rv.workdir / "big.bin").write_bytes(bytes(range(256)) * 4096)
    (rv.workdir / "lines.txt").write_text("".join(f"{i * 7919 % 1000}\n" for i in range(2000)))
    plain = rv.run(argv)
    assert plain.returncode == 0, plain.describe()
    res = rv.run(argv, preload=[core_lib, hook_lib("clobber")])
    assert res.returncode == 0 and res.stdout == plain.stdout, res.describe()


def test_signals_under_clobbering_hook(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                                       hook_lib) -> None:
    res = rv.run([str(test_programs / "t_signals")], preload=[core_lib, hook_lib("clobber")])
    assert res.returncode == 0 and "t_signals: PASS" in res.out, res.describe()


@pytest.mark.parametrize("call", ["getpid", "getppid"])
def test_registers_preserved_non_pie(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                                     hook_lib, call: str) -> None:
    """Issue 11: a non-PIE executable (at 0x10000, far beyond auipc+jalr's
    2 GiB from the core) is patched too, through a far veneer that borrows
    t0 on the stack; every register still survives, with a clobbering hook."""
    prog = str(test_programs / "t_regs_nopie")
    res = rv.run([prog, call], preload=[core_lib, hook_lib("clobber")],
                 env={"INTERCEPT_ALL_OBJS": "1", "INTERCEPT_LOG": str(rv.workdir / "log")})
    assert res.returncode == 0 and res.out.endswith("\nregisters preserved\n"), res.describe()
    log = (rv.workdir / "log").read_text()
    assert "patch (main program): ecalls" in log and " left 0" in log.split("patch (main program)")[1].split("\n")[0], log
    res = rv.run([prog], preload=[core_lib, hook_lib("fake_getpid")], env={"INTERCEPT_ALL_OBJS": "1"})
    assert res.out == f"a0={FAKE_PID}\nregisters preserved\n", res.describe()

