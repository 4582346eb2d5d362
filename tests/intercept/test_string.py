"""The core's own memcpy, memset and strlen (intercept/src/runtime/string.c:
every call from the library binds to them, the client's copies of read data
included): byte-exact against plain loops for every alignment and the sizes
around each of their cases, on riscv64 under qemu (t_string.c)."""
from __future__ import annotations

from pathlib import Path

from rv_harness import Riscv64Runner


def test_string_functions_match_byte_loops(rv: Riscv64Runner, test_programs: Path) -> None:
    res = rv.run([str(test_programs / "t_string")])
    assert res.returncode == 0 and res.out == "ok\n", res.describe()
