"""Issue 3 (d): hook libraries written against the syscall_intercept API
(intercept/tests/hook_*.c), preloaded with libsyscall_intercept.so, change
what real riscv64 programs see: a faked getpid and an errno for one path.
Each effect is checked against the same program without the hook.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rv_harness import Riscv64Runner

FAKE_PID = 424242
EDQUOT_TEXT = os.strerror(errno.EDQUOT)  # "Disk quota exceeded"


@pytest.fixture
def fake_getpid(core_lib: Path, hook_lib) -> list[Path]:
    return [core_lib, hook_lib("fake_getpid")]


@pytest.fixture
def errno_path(core_lib: Path, hook_lib) -> list[Path]:
    return [core_lib, hook_lib("errno_path")]


def test_fake_getpid_c_program(rv: Riscv64Runner, test_programs: Path, fake_getpid) -> None:
    prog = str(test_programs / "t_getpid")
    plain = rv.run([prog])
    assert plain.returncode == 0, plain.describe()
    assert f"getpid={FAKE_PID} " not in plain.out
    hooked = rv.run([prog], preload=fake_getpid)
    assert hooked.returncode == 0, hooked.describe()
    assert hooked.out == f"getpid={FAKE_PID} syscall={FAKE_PID} agree\n", hooked.describe()


@pytest.mark.parametrize("argv", [
    ["dash", "-c", "echo $$"],
    ["python3", "-c", "import os; print(os.getpid())"],
], ids=["dash", "python3"])
def test_fake_getpid_real_programs(rv: Riscv64Runner, fake_getpid, argv) -> None:
    plain = rv.run(argv)
    assert plain.returncode == 0 and plain.out.strip().isdigit(), plain.describe()
    assert int(plain.out) != FAKE_PID
    hooked = rv.run(argv, preload=fake_getpid)
    assert hooked.returncode == 0, hooked.describe()
    assert hooked.out == f"{FAKE_PID}\n", hooked.describe()


def test_errno_hook_mkdir(rv: Riscv64Runner, errno_path) -> None:
    denied = rv.workdir / "denied"
    env = {"HOOK_ERRNO_PATH": str(denied)}
    res = rv.run(["mkdir", str(denied)], preload=errno_path, env=env)
    assert res.returncode == 1, res.describe()
    assert EDQUOT_TEXT in res.err, res.describe()
    assert not denied.exists(), "the hook answered, yet the kernel created the directory"
    # Other paths pass through in the same configuration.
    other = rv.workdir / "allowed"
    res = rv.run(["mkdir", str(other)], preload=errno_path, env=env)
    assert res.returncode == 0 and other.is_dir(), res.describe()
    # And without the hook the denied path works.
    res = rv.run(["mkdir", str(denied)])
    assert res.returncode == 0 and denied.is_dir(), res.describe()


def test_errno_hook_open(rv: Riscv64Runner, errno_path) -> None:
    target = rv.workdir / "secret.txt"
    target.write_text("contents\n")
    env = {"HOOK_ERRNO_PATH": str(target)}
    res = rv.run(["cat", str(target)], preload=errno_path, env=env)
    assert res.returncode == 1 and EDQUOT_TEXT in res.err, res.describe()
    assert res.stdout == b""
    code = (f"import errno\ntry:\n    open({str(target)!r})\n"
            f"except OSError as e:\n    print(errno.errorcode[e.errno])\n")
    res = rv.run(["python3", "-c", code], preload=errno_path, env=env)
    assert res.returncode == 0 and res.out == "EDQUOT\n", res.describe()
    res = rv.run(["cat", str(target)], preload=errno_path, env={"HOOK_ERRNO_PATH": "/nowhere"})
    assert res.returncode == 0 and res.out == "contents\n", res.describe()


def test_hook_library_alone_pulls_in_the_core(rv: Riscv64Runner, test_programs: Path,
                                              hook_lib) -> None:
    """syscall_intercept's usage: LD_PRELOAD names only the hook library,
    which is linked against libsyscall_intercept.so."""
    res = rv.run([str(test_programs / "t_getpid")], preload=[hook_lib("fake_getpid")])
    assert res.returncode == 0, res.describe()
    assert res.out == f"getpid={FAKE_PID} syscall={FAKE_PID} agree\n", res.describe()
