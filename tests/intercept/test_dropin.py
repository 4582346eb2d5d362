"""Issue 11 (3, 6): the core as a drop-in for syscall_intercept.

Installed like the original (SONAME libsyscall_intercept.so.0, a static
library, libsyscall_intercept.pc): a hook library built with the original's
recipe (pkg-config, -lsyscall_intercept) records NEEDED
libsyscall_intercept.so.0 and loads this core unchanged; a program linked
statically with the core and a hook is intercepted with no preload at all.
And the API's documented behaviour from a program's side (t_api.c):
syscall_error_code, syscall_hook_in_process_allowed with the original's
INTERCEPT_HOOK_CMDLINE_FILTER matching, syscall_no_intercept.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from rv_harness import Riscv64Runner, tool

FAKE_PID = 424242
HOOK_SRC = Path(__file__).resolve().parents[2] / "intercept/tests/hook_fake_getpid.c"
PROG_SRC = Path(__file__).resolve().parents[2] / "intercept/tests/t_getpid.c"


def _api(res) -> dict[str, str]:
    out = {}
    for ln in res.out.splitlines():
        for kv in ln.split():
            if "=" in kv:
                k, v = kv.split("=", 1)
                out[k] = v
    return out


def test_api_from_a_program(rv: Riscv64Runner, test_programs: Path, hook_lib) -> None:
    res = rv.run([str(test_programs / "t_api")])
    assert res.returncode == 0, res.describe()
    # syscall_error_code as the original's header: -1 .. -4096 are errors
    assert res.out.startswith("error_code -1=1 -4095=4095 -4096=4096 -4097=0 0=0 7=0\n"), res.describe()
    api = _api(res)
    assert api["allowed"] == "1" and api["getpid"] == api["raw"] == api["real"], res.describe()
    # with a hook: libc's getpid is faked, syscall_no_intercept is not
    res = rv.run([str(test_programs / "t_api")], preload=[hook_lib("fake_getpid")])
    api = _api(res)
    assert api["getpid"] == str(FAKE_PID) and api["raw"] == api["real"] != str(FAKE_PID), res.describe()


@pytest.mark.parametrize("filt,allowed", [
    ("t_api", True),             # the basename
    ("tests/t_api", True),       # a '/'-suffix of argv[0]
    ("api", False),              # a suffix, but not after a '/'
    ("", False),                 # empty: matches no ordinary argv[0]
    ("t_api/", False),
])
def test_cmdline_filter_as_the_original(filt: str, allowed: bool, rv: Riscv64Runner,
                                        test_programs: Path, hook_lib) -> None:
    res = rv.run([str(test_programs / "t_api")], preload=[hook_lib("fake_getpid")],
                 env={"INTERCEPT_HOOK_CMDLINE_FILTER": filt})
    assert res.returncode == 0, res.describe()
    api = _api(res)
    assert api["allowed"] == ("1" if allowed else "0"), res.describe()
    assert (api["getpid"] == str(FAKE_PID)) == allowed, res.describe()


@pytest.fixture(scope="module")
def installed(riscv64_build: Path, tmp_path_factory) -> Path:
    """`cmake --install` of the riscv64 build into a fresh prefix."""
    prefix = tmp_path_factory.mktemp("prefix")
    cp = subprocess.run([tool("cmake"), "--install", str(riscv64_build), "--prefix", str(prefix)],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return prefix


def _libdir(prefix: Path) -> Path:
    pcs = list(prefix.glob("**/pkgconfig/libsyscall_intercept.pc"))
    assert len(pcs) == 1, list(prefix.rglob("*"))
    return pcs[0].parent.parent


def test_installed_names(installed: Path) -> None:
    lib = _libdir(installed)
    so0 = lib / "libsyscall_intercept.so.0"
    assert so0.exists() and (lib / "libsyscall_intercept.so").exists()
    assert (lib / "libsyscall_intercept.a").is_file()
    assert (installed / "include/libsyscall_intercept_hook_point.h").is_file()
    dyn = subprocess.run([tool("riscv64-linux-gnu-readelf"), "-d", str(so0)],
                         capture_output=True, text=True).stdout
    assert "Library soname: [libsyscall_intercept.so.0]" in dyn, dyn


def _pkg(installed: Path, *args: str) -> list[str]:
    env = {**os.environ, "PKG_CONFIG_PATH": str(_libdir(installed) / "pkgconfig"),
           "PKG_CONFIG_SYSROOT_DIR": ""}
    cp = subprocess.run([tool("pkg-config"), *args, "libsyscall_intercept"],
                        capture_output=True, text=True, env=env)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.split()


def test_hook_built_with_pkg_config_loads_the_core(installed: Path, rv: Riscv64Runner,
                                                  test_programs: Path, tmp_path: Path) -> None:
    """The original's recipe: cc -shared hook.c $(pkg-config --cflags --libs
    libsyscall_intercept); LD_PRELOAD names the hook only."""
    hook = tmp_path / "libmyhook.so"
    cc = tool("riscv64-linux-gnu-gcc")
    cp = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(hook), str(HOOK_SRC),
                         *_pkg(installed, "--cflags", "--libs")], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    dyn = subprocess.run([tool("riscv64-linux-gnu-readelf"), "-d", str(hook)],
                         capture_output=True, text=True).stdout
    assert "Shared library: [libsyscall_intercept.so.0]" in dyn, dyn
    res = rv.run([str(test_programs / "t_getpid")], preload=[hook],
                 env={"LD_LIBRARY_PATH": str(_libdir(installed))})
    assert res.out == f"getpid={FAKE_PID} syscall={FAKE_PID} agree\n", res.describe()


def test_static_library(installed: Path, rv: Riscv64Runner, tmp_path: Path) -> None:
    """A program linked with libsyscall_intercept.a and a hook: intercepted
    without LD_PRELOAD; the core's internal names stay out of the program."""
    prog = tmp_path / "t_getpid_static_core"
    cc = tool("riscv64-linux-gnu-gcc")
    cflags = _pkg(installed, "--cflags")
    cp = subprocess.run([cc, "-O2", "-o", str(prog), str(PROG_SRC), str(HOOK_SRC), *cflags,
                         f"-I{PROG_SRC.parent}", str(_libdir(installed) / "libsyscall_intercept.a")],
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    syms = subprocess.run([tool("riscv64-linux-gnu-nm"), "-D", "--defined-only", str(prog)],
                          capture_output=True, text=True).stdout
    assert not re.search(r"\bgk_", syms), syms
    res = rv.run([str(prog)])
    assert res.out == f"getpid={FAKE_PID} syscall={FAKE_PID} agree\n", res.describe()
