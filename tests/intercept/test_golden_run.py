"""(f), second half: the golden sources patched at run time, then run.

intercept/tests/golden/*.S are linked into libgolden.so and driven by
golden_run.c (which checks every function's results and side effects).
The program runs under qemu without the preload, then with
libgkfs_intercept.so patching libgolden.so (INTERCEPT_LIBS, or
INTERCEPT_ALL_OBJS), with jal patches and with INTERCEPT_FORCE_GATEWAY=1:
(a) its output must equal the unpatched run's; (b) INTERCEPT_LOG must show
each golden system call with its distinctive arguments (only the patched
golden code makes those calls); (c) the per-site log (INTERCEPT_LOG_SITES)
must show every golden site patched with the kind and window that
test_golden.py derives by hand for the same sources.

rvv_mix.S is linked and its site checked, but vec() is not run: qemu 7.2
user mode (Debian bookworm) faults on RVV unit-stride loads such as
vle8.v even with QEMU_CPU=rv64,v=true.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from planner_util import GOLDEN_DIR
from rv_harness import Riscv64Runner, need
from test_golden import GOLDEN

# the symbol at offset 0 of each golden source: where its .text starts
FIRST_SYMBOL = {"close.S": "two", "edges.S": "first", "pcrel.S": "pcrel",
                "target_after.S": "after", "rvv_mix.S": "vec"}
REASON_WINDOW_HAS_TARGET = 2          # enum gk_reason, plan.h
SITE = re.compile(r"^site (\S+)\+0x([0-9a-f]+): (.*)$")
CALL = re.compile(r"^\d+\.\d+ (\w+)\(([^)]*)\) = (-?\d+|\?)")
MAGIC = {"two": 0x54574F31, "first": 0x46525354, "last": 0x4C415354,
         "last2": 0x4C415332, "open": 0x4F50454E, "after": 0x41465452}
RETRY_LEN = len("retry: written by the golden write\n")


@pytest.fixture(scope="module")
def golden_prog(tmp_path_factory) -> Path:
    """libgolden.so and golden_run, built with the cross gcc."""
    gcc = shutil.which("riscv64-linux-gnu-gcc")
    need(gcc is not None, "riscv64-linux-gnu-gcc missing: run deploy/setup-debian.sh")
    d = tmp_path_factory.mktemp("golden_run")
    flags = ["-march=rv64gc", "-mabi=lp64d"]
    srcs = [str(GOLDEN_DIR / n) for n in FIRST_SYMBOL]
    for argv in ([gcc, *flags, "-shared", "-fPIC", *srcs, "-o", str(d / "libgolden.so")],
                 [gcc, *flags, "-O1", str(GOLDEN_DIR / "golden_run.c"), f"-L{d}", "-lgolden",
                  "-Wl,-rpath,$ORIGIN", "-o", str(d / "golden_run")]):
        cp = subprocess.run(argv, capture_output=True, text=True)
        assert cp.returncode == 0, f"{' '.join(argv)}\n{cp.stderr}"
    return d


def expected_sites(lib: Path, mode: str) -> dict[int, str]:
    """ecall link address -> the site line's tail, from test_golden's table."""
    with open(lib, "rb") as fh:
        syms = {s.name: s["st_value"] for s in ELFFile(fh).get_section_by_name(".dynsym")
                .iter_symbols()}
    out = {}
    for name, sites in GOLDEN.items():
        base = syms[FIRST_SYMBOL[name]]
        for off, _sysno, _jal, gw in sites:
            if mode == "jal":
                out[base + off] = "jal"
            elif isinstance(gw, str):
                assert gw == "window_has_target"
                out[base + off] = f"left {REASON_WINDOW_HAS_TARGET}"
            else:
                out[base + off] = f"gateway window +{base + gw[0]:#x} {gw[1]}"
    return out


def golden_calls(log: list[str]) -> list[tuple[str, list[int], str]]:
    """(name, args, result) of the logged calls made with golden arguments."""
    out = []
    for ln in log:
        m = CALL.match(ln)
        if not m:
            continue
        args = [int(a, 16) for a in m[2].split(", ")]
        out.append((m[1], args, m[3]))
    return out


MODES = {
    "jal": {"INTERCEPT_LIBS": "libgolden.so"},
    "gateway": {"INTERCEPT_LIBS": "libgolden.so", "INTERCEPT_FORCE_GATEWAY": "1"},
    "jal-all-objs": {"INTERCEPT_ALL_OBJS": "1"},
    "gateway-all-objs": {"INTERCEPT_ALL_OBJS": "1", "INTERCEPT_FORCE_GATEWAY": "1"},
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_golden_patched_and_run(mode: str, golden_prog: Path, rv: Riscv64Runner,
                                intercept_lib: Path, tmp_path: Path) -> None:
    prog = str(golden_prog / "golden_run")
    (rv.workdir / "golden_run.data").write_text("golden\n")
    plain = rv.run([prog])
    assert plain.returncode == 0 and "golden_run: 0 wrong" in plain.out, plain.describe()

    log_path = tmp_path / "intercept.log"
    res = rv.run([prog], preload=[intercept_lib],
                 env={"INTERCEPT_LOG": str(log_path), "INTERCEPT_LOG_SITES": "1",
                      "INTERCEPT_LOG_RAW": "1",   # the six registers, as passed
                      **MODES[mode]})
    # (a) same behaviour as unpatched
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout), res.describe()
    log = log_path.read_text().splitlines()

    # (c) every golden site patched as derived by hand
    kind = "gateway" if "gateway" in mode else "jal"
    lib = golden_prog / "libgolden.so"
    got = {int(m[2], 16): m[3] for m in map(SITE.match, log)
           if m and m[1].endswith("/libgolden.so")}
    want = expected_sites(lib, kind)
    assert {a: got.get(a, "missing")[:len(w)] for a, w in want.items()} == want, \
        "\n".join(ln for ln in log if ln.startswith(("site", "patch")) and "golden" in ln)
    assert set(got) == set(want), "sites in libgolden.so beyond the golden ones"

    # (b) the golden calls went through the patches: logged with their arguments
    calls = golden_calls(log)

    def seen(name: str, pred) -> bool:
        return any(c[0] == name and pred(c[1], c[2]) for c in calls)

    assert seen("getpid", lambda a, r: a[0] == MAGIC["two"])
    assert seen("gettid", lambda a, r: a[1] == MAGIC["two"])          # 10 bytes later
    assert seen("getppid", lambda a, r: a[0] == MAGIC["first"])       # ecall first
    # ecall last in a 14-byte function: jal only; a gateway site stays raw
    assert seen("ioctl", lambda a, r: a[0] == MAGIC["last"]) == (kind == "jal")
    assert seen("ioctl", lambda a, r: a[0] == MAGIC["last2"])
    assert seen("openat", lambda a, r: a[3] == MAGIC["open"] and int(r) >= 0)
    fd = next(int(r) for n, a, r in calls if n == "openat" and a[3] == MAGIC["open"])
    closes = [r for n, a, r in calls if n == "close" and a[0] == fd]
    assert closes[-2:] == ["0", "-9"], closes                         # cbranch twice
    assert seen("read", lambda a, r: a[0] == MAGIC["after"])          # target after
    assert seen("write", lambda a, r: a[0] == 1 and a[2] == RETRY_LEN)  # retry loop
