"""A node's gkfs-daemon: P member processes, one per core it is given.

One Python process is one GIL, so one daemon process serves at most one
core. `gkfs-daemon --processes P` (default `auto`: every core of a CPU
set given to it, else half the cores; auto_processes) starts P member
processes on the node, each a full
single-process daemon (`--processes 1`): its own ZeroMQ endpoint, its own
root dir (own LMDB and chunk directory) and its own slot in the cluster
record, so placement spreads paths and chunks over all members of all
nodes and no state is shared between processes (locks, holds and fences
stay with the record's owner member, as with one process per node).

This process only supervises: it starts the members, forwards SIGTERM and
SIGINT to them, exits 1 naming the member and its log when one fails during
start-up (after stopping the others), reports a member that dies later
(its slot stays down: clients get EIO naming it) and exits when all have
exited: 0 if every member stopped cleanly. A member whose supervisor is
killed gets SIGTERM (PR_SET_PDEATHSIG) and stops in an orderly way.

Per member k (0..P-1) of a node whose first member id is I:
  id        I + k (--id I, or --id-from-rank: I = rank * P); unknown ids
            are taken like a single daemon takes one (root dir, free slot)
  root dir  --rootdir with %i: expanded per member id; else <rootdir>/proc-<k>
            (this process holds <rootdir>'s lock, so a single-process daemon
            cannot take it meanwhile)
  log file  --log-file with %i: per member id; else <stem>-proc<k><suffix>
  listen    a fixed tcp port p: p + k; ipc://PATH: PATH-<k>; any port: as given
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gkfs_client import hostsfile
from gkfs_client.config import DaemonConfig

log = logging.getLogger("gkfs_daemon.node")

MEMBER_DIR = "proc-{k}"
_MEMBER_DIR_RE = re.compile(r"^proc-(\d+)$")
POLL_S = 0.05
# Options the supervisor decides per member; every other option given on
# the command line is passed on unchanged.
PER_MEMBER = {"processes", "rootdir", "log_file", "id", "id_from_rank", "members", "listen", "hosts_file",
              "help"}


class NodeStartupError(Exception):
    pass


def cores_given() -> int:
    """CPUs this process may run on (under Slurm: the job step's allocation)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_processes() -> int:
    """Members for `--processes auto`. A CPU set narrower than the machine
    (a Slurm job step, taskset, a cpuset) was given to the daemon: one member
    per core of it. A daemon that may run on every CPU shares them with the
    job's own processes on the node (an ad hoc file system runs beside its
    application): half of them, at least one. Measured (docs/performance.md):
    a member at full load uses ~0.75 cores (its Python thread and libzmq's
    I/O thread), a Python client spends at least as much CPU per call as the
    daemon, and on a 2-core machine a second member made 4 local clients
    slower (0.67-0.84x stats) without raising the node's capacity."""
    given = cores_given()
    if given < (os.cpu_count() or given):
        return given
    return max(1, given // 2)


def parse_processes(text: str) -> int | None:
    """'auto' -> None, 'P' -> P (>= 1); ValueError otherwise."""
    if text == "auto":
        return None
    p = int(text)
    if p < 1:
        raise ValueError("must be >= 1")
    return p


def rootdir_layout(rootdir: Path) -> int | None:
    """How many member processes an existing root dir was used with: 1 when
    it holds a single daemon's identity (daemon.json at its top), P when it
    holds proc-0..proc-<P-1> with identities, None when it holds neither."""
    if (rootdir / "daemon.json").exists():
        return 1
    try:
        ks = [int(m.group(1)) for e in rootdir.iterdir()
              if (m := _MEMBER_DIR_RE.match(e.name)) and (e / "daemon.json").exists()]
    except (FileNotFoundError, NotADirectoryError):
        return None
    return max(ks) + 1 if ks else None


def check_layout(rootdir: Path, processes: int) -> None:
    have = rootdir_layout(rootdir)
    if have is None or have == processes:
        return
    if have == 1:
        raise NodeStartupError(f"rootdir {rootdir} holds the data of a single-process daemon "
                               f"({rootdir / 'daemon.json'}), not of {processes} member processes: start it "
                               "with --processes 1 (or --processes auto), or use another --rootdir")
    raise NodeStartupError(f"rootdir {rootdir} holds the data of {have} member processes ({rootdir}/proc-0.."
                           f"proc-{have - 1}), not of {processes}: start it with --processes {have} (or "
                           "--processes auto), or use another --rootdir")


def member_listen(listen: str, k: int) -> str:
    if k == 0:
        return listen
    m = re.match(r"^(tcp://.+):(\d+)$", listen)
    if m and int(m.group(2)) != 0:
        return f"{m.group(1)}:{int(m.group(2)) + k}"
    if listen.startswith("ipc://"):
        return f"{listen}-{k}"
    return listen


def member_log(log_file: str, k: int, member_id: int | None) -> str:
    if not log_file:
        return ""
    if "%i" in log_file:
        return log_file.replace("%i", str(member_id))
    p = Path(log_file)
    return str(p.with_name(f"{p.stem}-proc{k}{p.suffix}"))


def _daemon_program() -> list[str]:
    me = sys.argv[0] if sys.argv else ""
    if os.path.basename(me) == "gkfs-daemon" and os.path.isfile(me):
        return [sys.executable, me]  # shows as gkfs-daemon in ps, same interpreter
    return [sys.executable, "-m", "gkfs_daemon.cli"]


def passed_on(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options given on the command line that every member gets as they are."""
    out: list[str] = []
    for action in parser._actions:
        if action.dest in PER_MEMBER or not action.option_strings:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value is False:
            continue
        flag = action.option_strings[-1]
        out += [flag] if value is True else [flag, str(value)]
    return out


def _set_pdeathsig() -> None:
    # A member outlives nothing: if the supervisor is killed, the member gets
    # SIGTERM and stops in an orderly way (leaves the hosts file, syncs).
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass
class Member:
    k: int
    id: int | None
    rootdir: str
    log_file: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    host: hostsfile.Host | None = None
    reported: bool = False

    def name(self) -> str:
        mid = self.host.id if self.host else self.id
        return f"member {mid}" if mid is not None else f"member process {self.k}"

    def log_hint(self) -> str:
        return f"its log {self.log_file}" if self.log_file else "its log is this daemon's stderr above"


def plan_members(parser, args, cfg: DaemonConfig, processes: int, first_id: int | None,
                 members: int | None, base: Path | None) -> list[Member]:
    common = _daemon_program() + passed_on(parser, args)
    out = []
    for k in range(processes):
        mid = None if first_id is None else first_id + k
        rootdir = cfg.rootdir.replace("%i", str(mid)) if base is None else str(base / MEMBER_DIR.format(k=k))
        logf = member_log(cfg.log_file, k, mid)
        argv = common + ["--processes", "1", "--rootdir", rootdir, "--hosts-file", str(cfg.hosts_path()),
                         "--listen", member_listen(cfg.listen, k)]
        if mid is not None:
            argv += ["--id", str(mid)]
        if members is not None:
            argv += ["--members", str(members)]
        if logf:
            argv += ["--log-file", logf]
        out.append(Member(k, mid, rootdir, logf, argv))
    return out


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _tail(path: str, lines: int = 8) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    {ln}" for ln in text)


def supervise(members: list[Member], hosts_path: Path) -> int:
    """Run the members until all have exited; the exit status of the node daemon."""
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for m in members:
            if m.proc is not None and m.proc.poll() is None:
                try:
                    m.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # Each member reads its siblings' records for permission checks from their
    # LMDB instead of asking them over the network (siblings.py).
    env = dict(os.environ, GKFS_NODE_ROOTDIRS=os.pathsep.join(str(Path(m.rootdir).resolve()) for m in members))
    for m in members:
        # Same process group: a Ctrl-C in the terminal reaches every member.
        m.proc = subprocess.Popen(m.argv, stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig, env=env)
        log.debug("member process %d: pid %d: %s", m.k, m.proc.pid, " ".join(m.argv))
    if stopping:  # a signal while they were being started: reach the later ones too
        forward(signal.SIGTERM, None)
    me = socket.gethostname()
    all_up = False
    failed = False
    while True:
        if not all_up and not stopping:
            _note_registered(members, hosts_path, me)
            if all(m.host is not None for m in members):
                all_up = True
                log.info("node daemon up: %d member processes: %s", len(members),
                         ", ".join(f"id {m.host.id} pid {m.host.pid} {m.host.address}" for m in members))
        for m in members:
            code = m.proc.poll()
            if code is None or m.reported:
                continue
            m.reported = True
            if not all_up and not stopping:
                if m.host is None:
                    _note_registered(members, hosts_path, me)
                log.error("%s (pid %d, rootdir %s) %s during start-up; %s%s", m.name(), m.proc.pid, m.rootdir,
                          _describe(code), m.log_hint(), _tail(m.log_file) if m.log_file else "")
                log.error("stopping the other member processes: the node daemon did not start")
                forward(signal.SIGTERM, None)
                failed = True
            elif stopping:
                log.info("%s (pid %d) stopped%s", m.name(), m.proc.pid, "" if code == 0 else f" ({_describe(code)})")
                failed = failed or code not in (0, -signal.SIGTERM)
            elif code != 0:
                failed = True
                where = f", {m.host.address}" if m.host else ""
                log.error("%s (pid %d%s, rootdir %s) %s; its slot is down (clients get EIO naming it) while "
                          "the other members keep serving; restart it alone with 'gkfs-daemon --processes 1 "
                          "--rootdir %s --hosts-file %s' (or stop and start this node's daemon); %s", m.name(),
                          m.proc.pid, where, m.rootdir, _describe(code), m.rootdir, hosts_path, m.log_hint())
            else:
                log.info("%s (pid %d) stopped", m.name(), m.proc.pid)
        if all(m.reported for m in members):
            break
        time.sleep(POLL_S)
    return 1 if failed else 0


def _note_registered(members: list[Member], hosts_path: Path, me: str) -> None:
    try:
        slots = hostsfile.read_membership(hosts_path).slots
    except hostsfile.HostsFileError:
        return
    by_pid = {h.pid: h for h in slots if h is not None and h.hostname == me}
    for m in members:
        if m.host is None and m.proc is not None and m.proc.pid in by_pid:
            m.host = by_pid[m.proc.pid]
