"""`gkfs-ctl cluster start|stop`: a local multi-daemon cluster, or one daemon
per node of a job through srun or mpirun (launch.py).

start: writes the cluster record (a fixed member count N, chunk size,
mount and a new cluster uuid) once, before any daemon starts, then
launches N `gkfs-daemon --members N --id i` processes at once, each with
its own root dir (its own LMDB and chunk store) and its own member entry,
on an ephemeral loopback port (the daemon writes the port it got, so N
daemons never race for ports). Returns when all N are registered and
answer ping; otherwise stops what it started and fails with the daemon's
own log tail. Starting an existing cluster again needs the same N: the
member count is fixed for the cluster's life (another -n is an error).

-n N is the member count (the local test and demo form): with
--processes-per-node P (default 1 here) it starts N/P `gkfs-daemon
--processes P` commands, each supervising P member processes with ids
j*P .. j*P+P-1 (root dirs daemon-<id> each), so one host can stand for
N/P nodes of P cores.

stop: SIGTERMs the members registered in the hosts file (those on this
host) and waits until they are gone, and their node daemons (the
supervisors of P > 1 members) with them; each removes its own entry on exit.
The cluster record stays, so `cluster start` brings the same cluster back.

Both find the hosts file like every other command (--hosts-file, else
$LIBGKFS_HOSTS_FILE, else the default), so `cluster start` followed by any
other gkfs-ctl command with the same environment just works.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gkfs_client import hostsfile, security
from gkfs_client.config import ConfigError
from gkfs_client.ctl._common import EXIT_FAIL, EXIT_NO_CLUSTER, EXIT_OK, error, err_console

START_TIMEOUT_S = 30.0
LAUNCH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def register(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="start or stop a cluster: local daemons, or one daemon per "
                              "node through srun or mpirun")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser(
        "start", help="start N local daemons, or one per node with --slurm/--mpirun; returns when all answer",
        description="Without --slurm/--mpirun: start N daemons on this host, on loopback. With --slurm "
        "(inside an allocation) or --mpirun --host a,b,c: start one daemon per node through srun or "
        "mpirun, each listening on an address the other nodes reach (--listen) with its root dir on "
        "node-local storage (--rootdir), and return once every daemon answers. The hosts file must be "
        "on a file system all nodes share (default: $SLURM_SUBMIT_DIR/gkfs-$SLURM_JOB_ID/hosts, or "
        "./gkfs-cluster/hosts for --mpirun); its path is printed as an 'export LIBGKFS_HOSTS_FILE=...' "
        "line on stdout.")
    s.add_argument("--hosts-file", default=argparse.SUPPRESS,
                   help="the hosts file (same as gkfs-ctl --hosts-file; with --slurm/--mpirun on a shared file system)")
    s.add_argument("-n", "--daemons", type=int, default=3, help="number of local members (daemon processes) "
                   "(default 3)")
    s.add_argument("--processes-per-node", metavar="auto|P", default=None,
                   help="member processes per node daemon (gkfs-daemon --processes): one Python process uses "
                   "one core, so a node's daemon runs one member per core. With --slurm/--mpirun default auto "
                   "(Slurm: the CPUs the job has on each node, the smallest count; mpirun: the cores of this "
                   "host) and the cluster has nodes x P members. Local (-n N): default 1; P > 1 starts N/P "
                   "node daemons of P members each (N must be a multiple of P)")
    s.add_argument("--rootdir", help="parent of the daemons' root dirs, daemon-<id> each (default: the per-user "
                   "runtime dir, $XDG_RUNTIME_DIR/gkfs or /tmp/gkfs-<uid>; with --slurm/--mpirun a "
                   "node-local path such as /tmp or a local SSD, the same path on every node)")
    engine = s.add_mutually_exclusive_group()
    engine.add_argument("--slurm", action="store_true",
                        help="one daemon per node of the current Slurm allocation, through srun")
    engine.add_argument("--mpirun", action="store_true",
                        help="one daemon per node given by --host/--hostfile, through mpirun (Open MPI) or "
                        "mpiexec (MPICH/Hydra)")
    s.add_argument("--host", help="--mpirun: comma-separated nodes, one daemon each")
    s.add_argument("--hostfile", help="--mpirun: file with one node per line (extra columns ignored)")
    s.add_argument("--nodes", type=int, help="--slurm: use only the first N nodes of the allocation "
                   "(default: all)")
    s.add_argument("--listen", help="--slurm/--mpirun: where each daemon listens, resolved on its node: "
                   "an interface (ib0), a network (10.1.0.0/16), 'auto' (default: the default route's "
                   "interface, else the first non-loopback one) or tcp://HOST:PORT")
    s.add_argument("--mpirun-command", default="mpirun", help="--mpirun: the launcher program "
                   "(default mpirun; e.g. mpiexec, mpiexec.hydra)")
    s.add_argument("--launcher-arg", action="append", metavar="ARG",
                   help="--slurm/--mpirun: extra argument for srun/mpirun (repeatable), e.g. "
                   "--launcher-arg=--partition=io")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    s.add_argument("--chunk-size", help="bytes per chunk, e.g. 524288, 512K, 4M (default: config, 512 KiB)")
    s.add_argument("--mount", help="mount prefix recorded in the hosts file (default /gkfs)")
    s.add_argument("--config", help="TOML config file passed to every daemon")
    s.add_argument("--timeout", type=float,
                   help=f"seconds to wait for all daemons (default {START_TIMEOUT_S:g}; "
                   f"{LAUNCH_TIMEOUT_S:g} with --slurm/--mpirun)")
    s.add_argument("--log-level", help="daemon log level (debug, info, warning, error)")
    s.set_defaults(func=run_start)
    t = sub.add_parser("stop", help="SIGTERM the daemons in the hosts file and wait for them",
                       description="Stop the cluster of the hosts file. A cluster started with --slurm or "
                       "--mpirun is stopped through the same engine on every node; each daemon finishes "
                       "its requests, syncs, removes its member entry and exits; the cluster record stays, so the same "
                       "cluster (same member count, same root dirs) can be started again.")
    t.add_argument("--hosts-file", default=argparse.SUPPRESS, help="the hosts file (same as gkfs-ctl --hosts-file)")
    t.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S,
                   help=f"seconds to wait for the daemons to exit (default {STOP_TIMEOUT_S:g})")
    t.add_argument("--slurm", action="store_true", help="find the hosts file where 'start --slurm' puts it "
                   "by default")
    t.add_argument("--mpirun", action="store_true", help="find the hosts file where 'start --mpirun' puts "
                   "it by default")
    t.add_argument("--node-only", action="store_true",
                   help="stop only this node's daemons and leave the hosts file alone (what 'cluster "
                   "stop' runs on every node of a --slurm/--mpirun cluster)")
    t.set_defaults(func=run_stop)


def parse_size(text: str) -> int:
    """'524288', '512K', '512KiB', '4M' -> bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    if mult > 1:
        t = t[:-1]
    return int(t) * mult


def _daemon_command(args, index: int, rootdir: Path, hosts: Path, record: hostsfile.ClusterRecord,
                    per_node: int = 1) -> list[str]:
    exe = shutil.which("gkfs-daemon")
    # Fall back to the module when the console script is not on PATH (an
    # editable install used from a venv that is not activated).
    cmd = [exe] if exe else [sys.executable, "-m", "gkfs_daemon.cli"]
    # --id: a restarted daemon keeps its place, so placement does not move.
    cmd += ["--rootdir", str(rootdir), "--hosts-file", str(hosts), "--listen", "tcp://127.0.0.1:0",
            "--id", str(index), "--members", str(record.members), "--chunk-size", str(record.chunk_size),
            "--mount", record.mount, "--processes", str(per_node)]
    if args.config:
        cmd += ["--config", args.config]
    if args.log_level:
        cmd += ["--log-level", args.log_level]
    return cmd


def _live_local(hosts: list[hostsfile.Host]) -> list[hostsfile.Host]:
    me = socket.gethostname()
    return [h for h in hosts if h.hostname == me and _alive(h.pid)]


def _alive(pid: int) -> bool:
    # A zombie is dead (hostsfile.pid_alive): daemons started by `cluster
    # start` are reparented, and in containers PID 1 may never reap them.
    return hostsfile.pid_alive(pid)


def _read_or_empty(path: Path) -> list[hostsfile.Host]:
    try:
        return hostsfile.read_membership(path).listed()
    except hostsfile.HostsFileMissing:  # no cluster yet
        return []


def _record_for(n: int, hosts: Path, args) -> hostsfile.ClusterRecord:
    """The cluster record, written now (before any daemon starts) if absent.

    An existing record fixes the member count: another -n is an explicit
    error, never a silent re-shuffle of where files live.
    """
    from gkfs_client.config import daemon_config  # noqa: PLC0415

    overrides = {"chunk_size": parse_size(args.chunk_size) if args.chunk_size else None, "mount": args.mount}
    cfg = daemon_config(args.config, overrides)
    try:
        existing = hostsfile.read_record(hosts)
    except hostsfile.HostsFileMissing:
        existing = None
    if existing is None:
        record, _ = hostsfile.create_cluster(hosts, n, cfg.chunk_size, cfg.mount)
    else:
        record = existing
    if record.members != n:
        raise RuntimeError(f"{hosts} records a {record.members}-member cluster ({record.uuid}); a cluster's "
                           f"size is fixed when it is created, so -n {n} is refused (start it with "
                           f"-n {record.members}, or create a new cluster with another --hosts-file and "
                           "--rootdir)")
    if args.chunk_size and cfg.chunk_size != record.chunk_size:
        raise RuntimeError(f"the cluster of {hosts} uses chunk size {record.chunk_size}, not {cfg.chunk_size}")
    if args.mount and cfg.mount != record.mount:
        raise RuntimeError(f"the cluster of {hosts} uses mount {record.mount}, not {cfg.mount}")
    return record


def start_cluster(n: int, hosts: Path, base: Path, args, per_node: int = 1) -> list[hostsfile.Host]:
    """Start n members (n/per_node node daemons); return their hosts-file
    entries once all answer ping.

    Raises RuntimeError (with the failing daemon's log tail) otherwise,
    after stopping the daemons it started.
    """
    if n % per_node:
        raise RuntimeError(f"-n {n} is not a multiple of --processes-per-node {per_node}")
    already = _live_local(_read_or_empty(hosts))
    if already:
        raise RuntimeError(f"{hosts} already lists {len(already)} running daemon(s) "
                           f"(pids {', '.join(str(h.pid) for h in already)}); "
                           "run 'gkfs-ctl cluster stop' first or use another --hosts-file")
    # The runtime dir and keys: owner-only; a directory another user planted
    # (or can write) is refused, never used.
    security.ensure_private_dir(hosts.parent, what="gkfs hosts file dir")
    security.ensure_private_dir(base, what="gkfs root dirs' parent")
    record = _record_for(n, hosts, args)
    if security.security_mode() == "curve":
        security.ensure_cluster_keys(hosts)
    # Lines of daemons that died without leaving (kill -9, a crashed node)
    # would make clients wait for a daemon that is not there: drop them.
    me = socket.gethostname()
    for h in _read_or_empty(hosts):
        if h.hostname == me and not _alive(h.pid):
            hostsfile.unregister(hosts, h.id, h.pid)
    procs: list[tuple[subprocess.Popen, Path]] = []
    for i in range(0, n, per_node):
        if per_node == 1:
            rootdir = base / f"daemon-{i}"
            rootdir.mkdir(parents=True, exist_ok=True, mode=0o700)
            log = base / f"daemon-{i}.log"
        else:
            # Every member keeps its own root dir daemon-<id>, whatever P.
            rootdir = base / "daemon-%i"
            log = base / f"daemons-{i}-{i + per_node - 1}.log"
        with open(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600),
                  "ab") as logf:
            # New session: the daemons outlive this command and a Ctrl-C in
            # the shell that ran `cluster start` does not reach them.
            proc = subprocess.Popen(_daemon_command(args, i, rootdir, hosts, record, per_node),
                                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        procs.append((proc, log))
    try:
        return _wait_ready(procs, hosts, args.timeout, n)
    except BaseException:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _wait_ready(procs, hosts: Path, timeout: float, members: int | None = None) -> list[hostsfile.Host]:
    from gkfs_client.rpc import Call, Rpc
    from gkfs_client.transport import ZmqTransport

    deadline = time.monotonic() + timeout
    pids = {p.pid for p, _ in procs}
    members = len(procs) if members is None else members
    while True:
        for proc, log in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"gkfs-daemon (pid {proc.pid}) exited with status {proc.returncode} "
                                   f"during start-up; its log {log} ends with:\n{_tail(log)}")
        # A member is ours when we started it, or its node daemon (P > 1).
        mine = [h for h in _read_or_empty(hosts) if h.pid in pids or parent_pid(h.pid) in pids]
        if len(mine) == members:
            rpc = Rpc(ZmqTransport([h.address for h in mine], key=security.client_credentials(hosts)),
                      timeout_s=max(0.5, deadline - time.monotonic()))
            try:
                replies = rpc.call_each([Call(i, "ping") for i in range(len(mine))])
            finally:
                rpc.close()
            down = [h for h, r in zip(mine, replies) if isinstance(r, OSError) or r.status]
            if not down:
                return mine
        if time.monotonic() > deadline:
            have = len(mine)
            raise RuntimeError(f"only {have} of {members} daemons registered in {hosts} and answered "
                               f"ping within {timeout:g} s; log of the first daemon:\n{_tail(procs[0][1])}")
        time.sleep(0.05)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"
    except OSError as exc:
        return f"(cannot read: {exc})"


def stop_cluster(hosts_path: Path, timeout: float, node_only: bool = False) -> tuple[int, list[str]]:
    """SIGTERM every local daemon listed; return (number stopped, problems)."""
    hosts = hostsfile.read_hosts(hosts_path)  # raises the clear "missing" error
    me = socket.gethostname()
    problems: list[str] = []
    targets = []
    for h in hosts:
        if h.hostname != me:
            if not node_only:
                problems.append(f"daemon {h.id} ({h.address}) runs on {h.hostname}, not here: left alone")
        elif not _alive(h.pid):
            if node_only:
                continue  # the hosts file belongs to the launcher: never edited from a node
            # Died without unregistering (kill -9): remove its stale line so
            # clients stop trying it.
            hostsfile.unregister(hosts_path, h.id, h.pid)
        else:
            targets.append(h)
    # The node daemons supervising P > 1 members exit once their members have.
    supervisors = {pp for pp in (parent_pid(h.pid) for h in targets) if pp and _is_node_daemon(pp)}
    for h in targets:
        try:
            os.kill(h.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in [*(h.pid for h in targets), *supervisors]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for h in targets:
        if _alive(h.pid):
            problems.append(f"daemon {h.id} (pid {h.pid}, {h.address}) still running after {timeout:g} s")
    for pid in supervisors:
        if _alive(pid):
            problems.append(f"node daemon (pid {pid}) still running after {timeout:g} s")
    return len(targets), problems


def _is_node_daemon(pid: int) -> bool:
    """A gkfs-daemon supervising member processes (never srun's or mpirun's own processes)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return any(a.endswith((b"gkfs-daemon", b"gkfs_daemon.cli")) for a in argv[:3])


def cores_given() -> int:
    """CPUs this process may run on (what gkfs-daemon --processes auto uses)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def per_node_processes(text: str | None, default: str) -> int | None:
    """--processes-per-node: None for auto, else P >= 1 (ValueError when bad)."""
    value = text or default
    if value == "auto":
        return None
    p = int(value)
    if p < 1:
        raise ValueError(f"--processes-per-node must be 'auto' or >= 1, not {value}")
    return p


def _engine(args) -> str | None:
    return "slurm" if args.slurm else "mpirun" if args.mpirun else None


def run_launch(args, engine: str) -> int:
    from gkfs_client.ctl import launch

    try:
        hosts, members, took = launch.start(args, engine)
    except (launch.LaunchError, hostsfile.HostsFileError, ValueError, OSError) as exc:
        error("cluster start", str(exc))
        return EXIT_FAIL
    nodes = len({h.hostname for h in members})
    err_console.print(f"started {len(members)} daemon(s) on {nodes} node(s) through {engine} in {took:.1f} s "
                      f"({len(members) // max(1, nodes)} member processes per node); hosts file {hosts}",
                      markup=False)
    for h in members:
        err_console.print(f"  {h.id}  {h.hostname}  {h.address}  pid {h.pid}", markup=False)
    print(f"export {hostsfile.ENV_HOSTS_FILE}={hosts}", flush=True)
    return EXIT_OK


def run_start(args) -> int:
    engine = _engine(args)
    if args.timeout is None:
        args.timeout = LAUNCH_TIMEOUT_S if engine else START_TIMEOUT_S
    if engine:
        return run_launch(args, engine)
    for flag in ("host", "hostfile", "nodes", "listen", "launcher_arg"):
        if getattr(args, flag):
            error("cluster start", f"--{flag.replace('_', '-')} needs --slurm or --mpirun")
            return EXIT_FAIL
    hosts = hostsfile.resolve_hosts_file(args.hosts_file)
    base = Path(args.rootdir) if args.rootdir else hostsfile.runtime_dir()
    if args.daemons < 1:
        error("cluster start", "-n must be at least 1")
        return EXIT_FAIL
    try:
        per_node = per_node_processes(getattr(args, "processes_per_node", None), "1")
        if per_node is None:
            per_node = min(cores_given(), args.daemons)
        started = start_cluster(args.daemons, hosts, base.resolve(), args, per_node)
    except (RuntimeError, ValueError, OSError, hostsfile.HostsFileError, ConfigError) as exc:
        error("cluster start", str(exc))
        return EXIT_FAIL
    err_console.print(f"started {len(started)} daemon(s); hosts file {hosts}", markup=False)
    for h in started:
        err_console.print(f"  {h.id}  {h.address}  pid {h.pid}", markup=False)
    return EXIT_OK


def run_stop(args) -> int:
    from gkfs_client.ctl import launch

    engine = _engine(args)
    hosts = launch.hosts_file_for(args, engine) if engine else hostsfile.resolve_hosts_file(args.hosts_file)
    rec = None if args.node_only else launch.LaunchRecord.load(hosts)
    if rec is not None:
        try:
            problems = launch.stop(hosts, rec, args.timeout)
        except (launch.LaunchError, OSError) as exc:
            problems = [str(exc)]
        for p in problems:
            error("cluster stop", p)
        if not problems:
            err_console.print(f"stopped {rec.members} daemon(s) through {rec.engine}; member entries of {hosts} removed",
                              markup=False)
        return EXIT_FAIL if problems else EXIT_OK
    try:
        n, problems = stop_cluster(hosts, args.timeout, node_only=args.node_only)
    except hostsfile.HostsFileError as exc:
        error("cluster stop", str(exc))
        return EXIT_NO_CLUSTER
    for p in problems:
        error("cluster stop", p)
    err_console.print(f"stopped {n} daemon(s)" + (f" on {socket.gethostname()}" if args.node_only else ""),
                      markup=False)
    return EXIT_FAIL if any("still running" in p for p in problems) else EXIT_OK
