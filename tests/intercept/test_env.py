"""The core's environment variables (issue 3, deliverable 3):
INTERCEPT_SYS_INCLUDE / INTERCEPT_SYS_EXCLUDE (names or numbers, mutually
exclusive), INTERCEPT_HOOK_CMDLINE_FILTER, INTERCEPT_LOG with and without a
trailing '-', INTERCEPT_LOG_TRUNC, and the library filter INTERCEPT_LIBS
(with INTERCEPT_ALL_OBJS).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rv_harness import Riscv64Runner, SyscallLog, log_files

FAKE_PID = 424242
NR_OPENAT = 56  # riscv64 (asm-generic) number


def _cat_logged(rv: Riscv64Runner, lib: Path, log: Path, **env: str):
    f = rv.workdir / "input.txt"
    f.write_text("hello\n")
    res = rv.run(["cat", str(f)], preload=[lib], env={"INTERCEPT_LOG": str(log), **env})
    return res, SyscallLog.read(log) if log.exists() else SyscallLog()


def test_sys_include_by_name(rv: Riscv64Runner, intercept_lib: Path, tmp_path: Path) -> None:
    res, log = _cat_logged(rv, intercept_lib, tmp_path / "l", INTERCEPT_SYS_INCLUDE="openat,close")
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    assert log.names() and log.names() <= {"openat", "close"}, log.names()
    assert "openat" in log.names()


def test_sys_include_by_number(rv: Riscv64Runner, intercept_lib: Path, tmp_path: Path) -> None:
    res, log = _cat_logged(rv, intercept_lib, tmp_path / "l", INTERCEPT_SYS_INCLUDE=str(NR_OPENAT))
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    assert log.names() == {"openat"}, log.names()


def test_sys_exclude(rv: Riscv64Runner, intercept_lib: Path, tmp_path: Path) -> None:
    res, log = _cat_logged(rv, intercept_lib, tmp_path / "l", INTERCEPT_SYS_EXCLUDE="read,write")
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    assert "openat" in log.names()
    assert not log.names() & {"read", "write"}, log.names()


def test_include_and_exclude_is_an_error(rv: Riscv64Runner, intercept_lib: Path,
                                         tmp_path: Path) -> None:
    res, log = _cat_logged(rv, intercept_lib, tmp_path / "l",
                           INTERCEPT_SYS_INCLUDE="openat", INTERCEPT_SYS_EXCLUDE="read")
    # The program still runs, untouched, and the user is told why.
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    assert "INTERCEPT_SYS_INCLUDE" in res.err and "INTERCEPT_SYS_EXCLUDE" in res.err, res.describe()
    assert not log.calls(), "nothing may be intercepted with a contradictory filter"


def test_unknown_syscall_name_is_an_error(rv: Riscv64Runner, intercept_lib: Path,
                                          tmp_path: Path) -> None:
    res, log = _cat_logged(rv, intercept_lib, tmp_path / "l",
                           INTERCEPT_SYS_INCLUDE="openat,no_such_call")
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    assert "no_such_call" in res.err, res.describe()
    assert not log.calls()


def test_cmdline_filter(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                        hook_lib) -> None:
    preload = [core_lib, hook_lib("fake_getpid")]
    prog = str(test_programs / "t_getpid")
    res = rv.run([prog], preload=preload, env={"INTERCEPT_HOOK_CMDLINE_FILTER": "t_getpid"})
    assert res.out.startswith(f"getpid={FAKE_PID} "), res.describe()
    res = rv.run([prog], preload=preload, env={"INTERCEPT_HOOK_CMDLINE_FILTER": "something_else"})
    assert res.returncode == 0 and f"={FAKE_PID}" not in res.out, res.describe()
    # In a process tree only the matching program is intercepted: dash is not,
    # its child t_getpid is.
    res = rv.run(["dash", "-c", f"echo $$; {prog}"], preload=preload,
                 env={"INTERCEPT_HOOK_CMDLINE_FILTER": "t_getpid"})
    assert res.returncode == 0, res.describe()
    first, second = res.out.splitlines()
    assert int(first) != FAKE_PID
    assert second.startswith(f"getpid={FAKE_PID} "), res.describe()


def test_hook_in_process_allowed(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                                 hook_lib) -> None:
    """syscall_hook_in_process_allowed() follows INTERCEPT_HOOK_CMDLINE_FILTER;
    hook_clone_count installs its hooks only where it says yes."""
    preload = [core_lib, hook_lib("clone_count")]
    prog = str(test_programs / "t_threads")
    yes = rv.run([prog], preload=preload, env={"INTERCEPT_HOOK_CMDLINE_FILTER": "t_threads"})
    no = rv.run([prog], preload=preload, env={"INTERCEPT_HOOK_CMDLINE_FILTER": "not_this"})
    assert yes.returncode == 0 and no.returncode == 0, (yes.describe(), no.describe())
    assert "allowed=1" in yes.err and "parent=8 child=8" in yes.err, yes.describe()
    assert "allowed=0" in no.err and "parent=0 child=0" in no.err, no.describe()


def test_log_trailing_dash_appends_pid(rv: Riscv64Runner, test_programs: Path,
                                       intercept_lib: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    res = rv.run([str(test_programs / "t_getpid")], preload=[intercept_lib],
                 env={"INTERCEPT_LOG": f"{logs}/trace-"})
    assert res.returncode == 0, res.describe()
    pid = int(res.out.split()[0].removeprefix("getpid="))
    files = log_files(logs)
    assert [f.name for f in files] == [f"trace-{pid}"]
    log = SyscallLog.read(files[0])
    assert log.pids() == {pid} and "getpid" in log.names()


def test_log_plain_path_and_trunc(rv: Riscv64Runner, intercept_lib: Path, tmp_path: Path) -> None:
    log = tmp_path / "exact.log"
    _, first = _cat_logged(rv, intercept_lib, log)
    n = len(first.calls())
    assert n > 0 and [p.name for p in tmp_path.iterdir() if p.name.startswith("exact")] == ["exact.log"]
    # Default: truncated by the next run.
    _, again = _cat_logged(rv, intercept_lib, log)
    assert abs(len(again.calls()) - n) <= 2, (n, len(again.calls()))
    # INTERCEPT_LOG_TRUNC=0: appended.
    _, appended = _cat_logged(rv, intercept_lib, log, INTERCEPT_LOG_TRUNC="0")
    assert len(appended.calls()) >= len(again.calls()) + n - 2


@pytest.mark.parametrize("env,expect", [
    ({}, ("fake", "real", "real")),
    ({"INTERCEPT_LIBS": "libt_rawsys.so"}, ("fake", "fake", "real")),
    ({"INTERCEPT_LIBS": "libt_raw*"}, ("fake", "fake", "real")),
    ({"INTERCEPT_LIBS": "libnot_loaded.so,libother*"}, ("fake", "real", "real")),
    ({"INTERCEPT_ALL_OBJS": "1"}, ("fake", "fake", "fake")),
    # as in syscall_intercept: set is set, whatever the value
    ({"INTERCEPT_ALL_OBJS": "0"}, ("fake", "fake", "fake")),
], ids=["default-libc-only", "libs-exact", "libs-glob", "libs-nomatch", "all-objs",
        "all-objs-any-value"])
def test_library_filter(rv: Riscv64Runner, test_programs: Path, core_lib: Path, hook_lib,
                        env: dict[str, str], expect: tuple[str, str, str]) -> None:
    """t_libfilter calls getpid via libc, via its own library's ecall and via
    an ecall in the executable; the getpid-faking hook shows which objects
    the core patched."""
    res = rv.run([str(test_programs / "t_libfilter")],
                 preload=[core_lib, hook_lib("fake_getpid")], env=env)
    assert res.returncode == 0, res.describe()
    fields = dict(kv.split("=") for kv in res.out.split())
    seen = tuple("fake" if int(fields[k]) == FAKE_PID else "real" for k in ("libc", "lib", "exe"))
    assert seen == expect, res.describe()


@pytest.mark.parametrize("env,expect", [
    ({}, ("fake", "real", "real")),
    ({"INTERCEPT_ALL_OBJS": "1"}, ("fake", "fake", "fake")),
], ids=["default", "all-objs"])
def test_library_filter_non_pie(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                                hook_lib, env: dict[str, str], expect) -> None:
    """Issue 11: a non-PIE main program is patched with INTERCEPT_ALL_OBJS
    (it used to be left with emit_failed: too far from the core)."""
    res = rv.run([str(test_programs / "t_libfilter_nopie")],
                 preload=[core_lib, hook_lib("fake_getpid")], env=env)
    assert res.returncode == 0, res.describe()
    fields = dict(kv.split("=") for kv in res.out.split())
    seen = tuple("fake" if int(fields[k]) == FAKE_PID else "real" for k in ("libc", "lib", "exe"))
    assert seen == expect, res.describe()


@pytest.mark.parametrize("env,expect", [
    ({}, ("real", "real", "fake")),
    ({"INTERCEPT_LIBS": "libt_rawsys.so"}, ("fake", "fake", "fake")),
    ({"INTERCEPT_ALL_OBJS": "1"}, ("fake", "fake", "fake")),
], ids=["default", "libs", "all-objs"])
def test_objects_opened_later(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                              hook_lib, env: dict[str, str], expect) -> None:
    """Issue 11: objects opened with dlopen after start are patched when
    selected (INTERCEPT_LIBS, INTERCEPT_ALL_OBJS), also when closed and
    opened again (the same address may now hold a fresh copy), and a libc
    loaded into a new namespace with dlmopen always is."""
    res = rv.run([str(test_programs / "t_dlopen"), str(test_programs / "libt_rawsys.so")],
                 preload=[core_lib, hook_lib("fake_getpid")], env=env)
    assert res.returncode == 0, res.describe()
    fields = dict(kv.split("=") for kv in res.out.split())
    seen = tuple("fake" if int(fields[k]) == FAKE_PID else "real"
                 for k in ("lib", "reopened", "nslibc"))
    assert seen == expect, res.describe()


def test_python_ctypes_library_patched(rv: Riscv64Runner, test_programs: Path, core_lib: Path,
                                       hook_lib) -> None:
    """A real program loading a library late: python3's ctypes.CDLL is a
    dlopen; with INTERCEPT_LIBS naming it, its own ecall is hooked."""
    lib = test_programs / "libt_rawsys.so"
    code = f"import ctypes; print(ctypes.CDLL({str(lib)!r}).rawsys_getpid())"
    res = rv.run(["python3", "-c", code], preload=[core_lib, hook_lib("fake_getpid")],
                 env={"INTERCEPT_LIBS": "libt_rawsys.so"})
    assert res.returncode == 0 and res.out == f"{FAKE_PID}\n", res.describe()
    res = rv.run(["python3", "-c", code], preload=[core_lib, hook_lib("fake_getpid")])
    assert res.returncode == 0 and res.out != f"{FAKE_PID}\n", res.describe()


def test_python_imports_patched_with_all_objs(rv: Riscv64Runner, intercept_lib: Path,
                                              tmp_path: Path) -> None:
    """python3 dlopens its extension modules while it runs: with
    INTERCEPT_ALL_OBJS each is patched as it arrives (a patch line per
    module after start), and the program still works."""
    log = tmp_path / "log"
    code = ("import json, decimal, hashlib, ctypes, sqlite3, zlib\n"
            "print(hashlib.sha256(zlib.compress(json.dumps([str(decimal.Decimal(1)/7)]).encode()))"
            ".hexdigest()[:8], sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])")
    plain = rv.run(["python3", "-c", code])
    res = rv.run(["python3", "-c", code], preload=[intercept_lib],
                 env={"INTERCEPT_ALL_OBJS": "1", "INTERCEPT_LOG": str(log)})
    assert plain.returncode == 0 and res.returncode == 0 and res.out == plain.out, res.describe()
    patched = re.findall(r"^patch (\S+): ecalls (\d+), patched (\d+)", log.read_text(), re.M)
    late = [p for p in patched if "lib-dynload" in p[0] or "sqlite" in p[0]]
    assert late, patched
    assert all(e == p for _, e, p in patched), patched


def test_names_sharing_a_prefix_are_told_apart(rv: Riscv64Runner, intercept_lib: Path,
                                               tmp_path: Path) -> None:
    """The constructors read their variables in one pass over the
    environment (gk_getenv_many): a variable whose name extends another's
    (INTERCEPT_LOG_SITES, INTERCEPT_LOGX) or is cut short of it is not that
    one, and an empty INTERCEPT_LOG is no log."""
    f = rv.workdir / "input.txt"
    f.write_text("hello\n")
    longer, empty = tmp_path / "longer", tmp_path / "empty"
    res = rv.run(["cat", str(f)], preload=[intercept_lib],
                 env={"INTERCEPT_LOGX": str(longer), "INTERCEPT_LOG_SITES": "1",
                      "INTERCEPT_LO": str(longer), "INTERCEPT_LOG_TRUNC": "0"})
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    assert not longer.exists(), "INTERCEPT_LOGX / INTERCEPT_LO taken for INTERCEPT_LOG"
    res = rv.run(["cat", str(f)], preload=[intercept_lib],
                 env={"INTERCEPT_LOG": "", "INTERCEPT_LOGX": str(empty)})
    assert res.returncode == 0 and not empty.exists(), res.describe()
    # both set: the log, with every site listed (INTERCEPT_LOG_SITES=1)
    log = tmp_path / "l"
    res = rv.run(["cat", str(f)], preload=[intercept_lib],
                 env={"INTERCEPT_LOG_SITES": "1", "INTERCEPT_LOG": str(log)})
    assert res.returncode == 0 and res.out == "hello\n", res.describe()
    text = log.read_text()
    assert re.search(r"^site \S+libc\.so\.6\+0x[0-9a-f]+: jal$", text, re.M), text[:2000]
    # INTERCEPT_LOG_SITES=0: only the sites left alone (none here) get a line
    log0 = tmp_path / "l0"
    res = rv.run(["cat", str(f)], preload=[intercept_lib],
                 env={"INTERCEPT_LOG_SITES": "0", "INTERCEPT_LOG": str(log0)})
    assert res.returncode == 0 and not re.search(r": jal$", log0.read_text(), re.M)


def test_gkfs_client_follows_the_cmdline_filter(rv: Riscv64Runner, intercept_lib: Path,
                                                tmp_path: Path) -> None:
    """The gkfs client's constructor asks the core whether this process is
    intercepted (gk_cfg.allowed, the answer syscall_hook_in_process_allowed
    gives): a process the filter leaves alone gets no client at all (its
    LIBGKFS_LOG=info start-up line is never written); a matching one does."""
    for filt, installed in (("something_else", False), ("true", True)):
        out = tmp_path / f"gkfs-{filt}.log"
        res = rv.run(["true"], preload=[intercept_lib],
                     env={"INTERCEPT_HOOK_CMDLINE_FILTER": filt, "LIBGKFS_LOG": "info",
                          "LIBGKFS_LOG_OUTPUT": str(out)})
        assert res.returncode == 0, res.describe()
        text = out.read_text() if out.exists() else ""
        assert ("config" in text) == installed, (filt, text, res.describe())
