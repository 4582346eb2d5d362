"""Landing pads are jump targets for gateway windows, on the host and at
run time.  intercept/tests/eh/landing_pad.S puts a landing pad (known only
from .eh_frame -> LSDA -> .gcc_except_table) 4 bytes before an ecall:
without it the shortest gateway window would start at the function and
swallow the pad; with it the window starts at the pad.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from gkfs_client import native_plan as npl
from gkfs_client import plan_elf as pe
from rv_harness import Riscv64Runner, need

EH_DIR = Path(__file__).resolve().parents[2] / "intercept" / "tests" / "eh"
SITE = re.compile(r"^site (\S+)\+0x([0-9a-f]+): (.*)$")
PAD, ECALL = 8, 12            # offsets from eh_pad_fn (see landing_pad.S)


@pytest.fixture(scope="module")
def eh_prog(tmp_path_factory) -> Path:
    gcc = shutil.which("riscv64-linux-gnu-gcc")
    need(gcc is not None, "riscv64-linux-gnu-gcc missing: run deploy/setup-debian.sh")
    d = tmp_path_factory.mktemp("eh_pad")
    flags = ["-march=rv64gc", "-mabi=lp64d"]
    for argv in ([gcc, *flags, "-shared", "-fPIC", str(EH_DIR / "landing_pad.S"),
                  "-o", str(d / "libeh_pad.so")],
                 [gcc, *flags, "-O1", str(EH_DIR / "eh_run.c"), f"-L{d}", "-leh_pad",
                  "-Wl,-rpath,$ORIGIN", "-o", str(d / "eh_run")]):
        cp = subprocess.run(argv, capture_output=True, text=True)
        assert cp.returncode == 0, f"{' '.join(argv)}\n{cp.stderr}"
    return d


def func_start(lib: Path) -> int:
    with open(lib, "rb") as fh:
        sym = ELFFile(fh).get_section_by_name(".dynsym").get_symbol_by_name("eh_pad_fn")
    return sym[0]["st_value"]


def gateway_window(info: pe.ElfInfo) -> tuple[int, int]:
    (site,) = [p.site for _, p in pe.plan_object(info).all_sites("gateway_only")]
    assert site.kind == npl.GK_PATCH_GATEWAY, site
    return site.win_start - pe.LOAD_BIAS, site.win_len


def test_host_report_keeps_the_pad_out_of_the_window(eh_prog: Path) -> None:
    lib = eh_prog / "libeh_pad.so"
    f = func_start(lib)
    info = pe.read_elf(lib)
    assert info.target_sources["landing_pads"] == 1 and f + PAD in info.extra_targets
    assert gateway_window(info) == (f + PAD, 16)
    # the source is sensitive: without the pad the window would swallow it
    info.extra_targets.discard(f + PAD)
    assert gateway_window(info) == (f, 16)


def test_runtime_reads_the_pad_from_memory(eh_prog: Path, rv: Riscv64Runner,
                                           intercept_lib: Path, tmp_path: Path) -> None:
    prog = str(eh_prog / "eh_run")
    f = func_start(eh_prog / "libeh_pad.so")
    plain = rv.run([prog])
    assert plain.returncode == 0 and plain.out == "eh_pad_fn: ok\n", plain.describe()
    log = tmp_path / "log"
    res = rv.run([prog], preload=[intercept_lib],
                 env={"INTERCEPT_LOG": str(log), "INTERCEPT_LOG_SITES": "1",
                      "INTERCEPT_LIBS": "libeh_pad.so", "INTERCEPT_FORCE_GATEWAY": "1"})
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout), res.describe()
    sites = {int(m[2], 16): m[3] for m in map(SITE.match, log.read_text().splitlines())
             if m and m[1].endswith("/libeh_pad.so")}
    assert sites == {f + ECALL: f"gateway window +{f + PAD:#x} 16"}, sites
