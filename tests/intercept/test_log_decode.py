"""Issue 11 (4): INTERCEPT_LOG decodes calls like syscall_intercept's log
(names, quoted and escaped strings and buffers, AT_FDCWD, open flags, octal
modes, errno names) and keeps our own information: pid.tid, (hooked)/(raw),
the per-object patch summary. INTERCEPT_LOG_RAW=1 gives the six registers.
"""
from __future__ import annotations

import re
from pathlib import Path

from rv_harness import Riscv64Runner


def _cat(rv: Riscv64Runner, lib: Path, log: Path, **env: str):
    f = rv.workdir / "in put.txt"
    f.write_text('say "hi"\n')
    res = rv.run(["cat", str(f), "/no/such/file"], preload=[lib],
                 env={"INTERCEPT_LOG": str(log), **env})
    assert res.returncode == 1 and res.out == 'say "hi"\n', res.describe()
    return f, log.read_text()


def test_decoded_lines(rv: Riscv64Runner, core_lib: Path, tmp_path: Path) -> None:
    f, text = _cat(rv, core_lib, tmp_path / "log")
    pt = r"^\d+\.\d+ "
    assert re.search(pt + re.escape(f'openat(AT_FDCWD, "{f}", O_RDONLY, 00) = ') + r"\d+$",
                     text, re.M), text
    assert re.search(pt + re.escape('openat(AT_FDCWD, "/no/such/file", O_RDONLY, 00) = -2 ENOENT')
                     + "$", text, re.M), text
    # the error message cat writes: a buffer with its length, quoted
    assert re.search(pt + re.escape('write(2, ": No such file or directory", 27) = 27') + "$",
                     text, re.M), text
    assert re.search(pt + r"close\(\d+\) = 0$", text, re.M), text
    assert re.search(pt + r"exit_group\(1\) = \?$", text, re.M), text
    assert re.search(r"^patch /\S*libc\.so\.6: ecalls \d+, patched \d+", text, re.M), text


def test_open_flags_and_mode(rv: Riscv64Runner, core_lib: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    res = rv.run(["dash", "-c", "echo x > out.txt"], preload=[core_lib],
                 env={"INTERCEPT_LOG": str(log)})
    assert res.returncode == 0, res.describe()
    assert re.search(r'openat\(AT_FDCWD, "out.txt", O_WRONLY\|O_CREAT\|O_TRUNC(\|\w+)*, 0666\) = \d+',
                     log.read_text()), log.read_text()


def test_strings_escaped_and_results_read_back(rv: Riscv64Runner, core_lib: Path,
                                               tmp_path: Path) -> None:
    """A file's bytes as read (the result's length), quotes escaped."""
    _, text = _cat(rv, core_lib, tmp_path / "log")
    assert ('"say \\"hi\\"\\n"' in text), text


def test_hooked_calls_marked(rv: Riscv64Runner, test_programs: Path, intercept_lib: Path,
                             tmp_path: Path) -> None:
    """libgkfs_intercept.so logs every call it passes to the kernel; the
    (hooked) mark and pid.tid prefix stay."""
    log = tmp_path / "log"
    res = rv.run([str(test_programs / "t_getpid")], preload=[intercept_lib],
                 env={"INTERCEPT_LOG": str(log)})
    assert res.returncode == 0, res.describe()
    pid = res.out.split()[0].removeprefix("getpid=")
    assert re.search(rf"^{pid}\.{pid} getpid\(\) = {pid}$", log.read_text(), re.M), log.read_text()


def test_raw_registers_on_request(rv: Riscv64Runner, core_lib: Path, tmp_path: Path) -> None:
    _, text = _cat(rv, core_lib, tmp_path / "log", INTERCEPT_LOG_RAW="1")
    assert re.search(r"^\d+\.\d+ openat\(0xffffffffffffff9c, 0x[0-9a-f]+, 0x[0-9a-f]+, "
                     r"0x[0-9a-f]+, 0x[0-9a-f]+, 0x[0-9a-f]+\) = -2$", text, re.M), text


def test_log_off_writes_nothing(rv: Riscv64Runner, core_lib: Path) -> None:
    res = rv.run(["true"], preload=[core_lib])
    # only the plan cache (HOME is the work directory)
    assert res.returncode == 0 and [p.name for p in rv.workdir.iterdir()] in ([], [".cache"]), \
        list(rv.workdir.iterdir())
