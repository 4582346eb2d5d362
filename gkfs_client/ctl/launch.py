"""Start and stop one gkfs daemon per node through srun or mpirun.

`gkfs-ctl cluster start --slurm` (inside an allocation) or `--mpirun --host
a,b,c` starts one `gkfs-daemon` per node with the site's own launcher, the
launcher process left running in the background (its tasks are the
daemons). Each node's daemon runs P member processes (--processes-per-node,
default auto: one per core; node.py in the daemon), so the cluster has
nodes x P members, ids rank*P .. rank*P+P-1 on the node of launcher rank
`rank`, root dirs <rootdir>/daemon-<id>. The hosts file must be on a file system every node shares; it is
written the shared-file-system way (hostsfile.py, "Shared file systems"):

1. stale state of an earlier launch with the same hosts file is removed;
2. every daemon (`--id-from-rank --shared-fs`) resolves its listen spec on
   its own node, binds, and writes only its own entry `<hosts>.d/<rank>`;
0. the cluster record (N members, chunk size, mount, cluster id) is
   written once, atomically, before any daemon starts (or an existing one
   with the same N is kept: the membership is fixed, another N is an error);
3. this command waits until all N entries are there and each daemon
   answers ping (readers merge record and entries; placement uses N from
   the start, so nobody sees a partial list), and records the launch in
   `<hosts>.launch`.

`cluster stop` (any shell with the same hosts file) runs
`gkfs-ctl cluster stop --node-only` once per node through the same engine,
which SIGTERMs that node's daemons and waits for them (a daemon finishes
its in-flight requests, closes LMDB and removes its entry before it
exits, so nothing acknowledged is lost); then it waits for the launcher
process and checks that every entry is gone; the record stays.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gkfs_client import hostsfile, security

ENGINES = ("slurm", "mpirun")
POLL_S = 0.05


class LaunchError(RuntimeError):
    pass


@dataclass
class LaunchRecord:
    """What `cluster stop` needs to know about a launch (<hosts>.launch, JSON)."""
    engine: str
    members: int
    nodes: list[str]  # what was given to the engine (mpirun: the --host list)
    launcher_pid: int
    launcher_host: str
    launcher_log: str
    mpirun: str = ""
    slurm_job: str = ""
    per_node: int = 1  # member processes per node daemon

    @property
    def node_count(self) -> int:
        return self.members // max(1, self.per_node)

    @staticmethod
    def path(hosts: Path) -> Path:
        return Path(f"{hosts}.launch")

    def save(self, hosts: Path) -> None:
        tmp = Path(f"{hosts}.launch.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, self.path(hosts))

    @classmethod
    def load(cls, hosts: Path) -> "LaunchRecord | None":
        try:
            return cls(**json.loads(cls.path(hosts).read_text()))
        except FileNotFoundError:
            return None


# --------------------------------------------------------------- locations

def default_hosts_file(engine: str) -> Path:
    """A hosts file on a shared file system: next to the job, not in /tmp."""
    if engine == "slurm":
        base = Path(os.environ.get("SLURM_SUBMIT_DIR") or os.getcwd())
        return base / f"gkfs-{os.environ.get('SLURM_JOB_ID', 'job')}" / "hosts"
    return Path.cwd() / "gkfs-cluster" / "hosts"


def hosts_file_for(args, engine: str) -> Path:
    explicit = args.hosts_file or os.environ.get(hostsfile.ENV_HOSTS_FILE)
    return Path(explicit).absolute() if explicit else default_hosts_file(engine)


def logs_dir(hosts: Path) -> Path:
    return Path(f"{hosts}.logs")


# ----------------------------------------------------------------- engines

def _ctl_command() -> list[str]:
    exe = shutil.which("gkfs-ctl")
    return [exe] if exe else [sys.executable, "-m", "gkfs_client.ctl.main"]


def _daemon_program() -> list[str]:
    exe = shutil.which("gkfs-daemon")
    return [exe] if exe else [sys.executable, "-m", "gkfs_daemon.cli"]


def slurm_nodes(requested: int | None) -> int:
    if not os.environ.get("SLURM_JOB_ID"):
        raise LaunchError("--slurm: not inside a Slurm allocation (SLURM_JOB_ID is unset); run it in an "
                          "sbatch script or under salloc")
    have = int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or 0)
    if have < 1:
        raise LaunchError("--slurm: SLURM_JOB_NUM_NODES is unset; cannot tell how many nodes the job has")
    n = requested or have
    if n > have:
        raise LaunchError(f"--nodes {n}: the allocation has only {have} node(s)")
    return n


def slurm_prefix(n: int, extra: list[str], cpus: int = 1) -> list[str]:
    srun = shutil.which("srun")
    if not srun:
        raise LaunchError("--slurm: srun not found on PATH")
    # --overlap: the job's own steps may use the same CPUs as the daemons.
    # --cpus-per-task: the node daemon's P members get P CPUs of the step.
    return [srun, "--overlap", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1",
            *([f"--cpus-per-task={cpus}"] if cpus > 1 else []), "--kill-on-bad-exit=0", *extra]


def slurm_cpus_per_node() -> int:
    """The CPUs the job has on each node, the smallest count
    (SLURM_JOB_CPUS_PER_NODE, e.g. '72(x2),36'; else SLURM_CPUS_ON_NODE)."""
    text = os.environ.get("SLURM_JOB_CPUS_PER_NODE", "")
    counts = [int(m) for m in re.findall(r"(\d+)(?:\(x\d+\))?", text)]
    if counts:
        return max(1, min(counts))
    on_node = os.environ.get("SLURM_CPUS_ON_NODE", "")
    return max(1, int(on_node)) if on_node.isdigit() else 1


def processes_per_node(args, engine: str) -> int:
    """--processes-per-node, auto resolved for the engine (one member per core)."""
    from gkfs_client.ctl.cluster import per_node_processes
    try:
        p = per_node_processes(getattr(args, "processes_per_node", None), "auto")
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    if p is not None:
        return p
    if engine == "slurm":
        return slurm_cpus_per_node()
    # mpirun: the nodes' cores are not known here; this host's stand for them.
    from gkfs_client.ctl.cluster import cores_given
    return cores_given()


def mpirun_flavour(mpirun: str) -> str:
    try:
        out = subprocess.run([mpirun, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"--mpirun: cannot run {mpirun} --version: {exc}") from None
    text = out.stdout + out.stderr
    if "Open MPI" in text or "OpenRTE" in text:
        return "openmpi"
    if "HYDRA" in text or "MPICH" in text or "Intel" in text:
        return "hydra"
    raise LaunchError(f"--mpirun: {mpirun} is neither Open MPI nor an MPICH/Hydra mpiexec:\n{text[:500]}")


def mpirun_prefix(mpirun: str, nodes: list[str], extra: list[str], per_node: int = 1) -> list[str]:
    n = len(nodes)
    if mpirun_flavour(mpirun) == "openmpi":
        # Open MPI binds a task to one core by default: the P members of a
        # node daemon would share it.
        unbound = ["--bind-to", "none"] if per_node > 1 else []
        return [mpirun, "-np", str(n), "--host", ",".join(nodes), "--map-by", "node", *unbound, *extra]
    return [mpirun, "-n", str(n), "-hosts", ",".join(nodes), "-ppn", "1",
            *(["-bind-to", "none"] if per_node > 1 else []), *extra]


def parse_host_list(text: str | None, hostfile: str | None) -> list[str]:
    names: list[str] = []
    if text:
        names += [h.strip() for h in text.split(",") if h.strip()]
    if hostfile:
        for line in Path(hostfile).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line.split()[0])  # "node slots=4": the name only
    if not names:
        raise LaunchError("--mpirun needs the nodes: --host a,b,c or --hostfile FILE")
    if len(set(names)) != len(names):
        raise LaunchError(f"--host/--hostfile lists a node twice: one daemon per node ({','.join(names)})")
    return names


# -------------------------------------------------------------------- start

def daemon_args(args, hosts: Path, rootdir: str, logs: Path, record: hostsfile.ClusterRecord,
                per_node: int = 1) -> list[str]:
    cmd = [*_daemon_program(), "--id-from-rank", "--shared-fs", "--hosts-file", str(hosts),
           "--rootdir", rootdir, "--listen", args.listen or "auto",
           "--log-file", str(logs / "daemon-%i.log"), "--members", str(record.members),
           "--chunk-size", str(record.chunk_size), "--mount", record.mount, "--processes", str(per_node)]
    if args.config:
        cmd += ["--config", args.config]
    if args.log_level:
        cmd += ["--log-level", args.log_level]
    return cmd


def _clear_stale(hosts: Path) -> None:
    rec = LaunchRecord.load(hosts)
    if rec and rec.launcher_host == socket.gethostname() and hostsfile.pid_alive(rec.launcher_pid):
        raise LaunchError(f"{hosts} belongs to a running launch ({rec.engine}, pid {rec.launcher_pid}); "
                          "run 'gkfs-ctl cluster stop' first or use another --hosts-file")
    # The cluster record stays (a cluster's membership is fixed; its root
    # dirs belong to it); stale entries of daemons that died go.
    LaunchRecord.path(hosts).unlink(missing_ok=True)
    entries = hostsfile.entries_dir(hosts)
    if entries.is_dir():
        for e in entries.iterdir():
            e.unlink(missing_ok=True)


def start(args, engine: str) -> tuple[Path, list[hostsfile.Host], float]:
    """Launch, wait for every member; returns (hosts file, members, seconds to all up)."""
    t0 = time.monotonic()
    hosts = hosts_file_for(args, engine)
    extra = list(args.launcher_arg or [])
    per_node = processes_per_node(args, engine)
    if engine == "slurm":
        n = slurm_nodes(args.nodes)
        nodes: list[str] = []
        prefix = slurm_prefix(n, extra, per_node)
        mpirun = ""
    else:
        nodes = parse_host_list(args.host, args.hostfile)
        if args.nodes and args.nodes != len(nodes):
            raise LaunchError(f"--nodes {args.nodes} but {len(nodes)} hosts given")
        n = len(nodes)
        mpirun = shutil.which(args.mpirun_command) or args.mpirun_command
        prefix = mpirun_prefix(mpirun, nodes, extra, per_node)
    # Owner-only dir; the cluster's keys made once, here, before N daemons
    # look for them at once (on a shared file system they would race).
    security.ensure_private_dir(hosts.parent, what="gkfs hosts file dir")
    if security.security_mode() == "curve":
        security.ensure_cluster_keys(hosts)
    _clear_stale(hosts)
    from gkfs_client.config import ConfigError
    from gkfs_client.ctl.cluster import _record_for
    fresh = hostsfile.read_record_or_none(hosts) is None
    try:
        record = _record_for(n * per_node, hosts, args)  # written once, before any daemon starts
    except (RuntimeError, ConfigError) as exc:
        raise LaunchError(str(exc)) from None
    logs = security.ensure_private_dir(logs_dir(hosts), what="gkfs launch logs dir")
    rootdir = str(Path(args.rootdir) / "daemon-%i") if args.rootdir else str(hostsfile.runtime_dir() / "daemon-%i")
    cmd = prefix + daemon_args(args, hosts, rootdir, logs, record, per_node)
    launcher_log = logs / f"{engine}.log"
    with open(launcher_log, "ab") as logf:
        logf.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    rec = LaunchRecord(engine, n * per_node, nodes, proc.pid, socket.gethostname(), str(launcher_log), mpirun,
                       os.environ.get("SLURM_JOB_ID", "") if engine == "slurm" else "", per_node)
    rec.save(hosts)
    try:
        members = wait_members(hosts, n * per_node, proc, launcher_log, args.timeout, progress=not args.quiet)
    except BaseException:
        # A cluster that never had a member is not a cluster: a failed first
        # launch leaves no record (no root dir can belong to it yet; looked
        # at before the stop, which removes the entries of those that ran).
        joined = any(_entry_present(hosts, k) for k in range(n * per_node))
        _abort(proc)
        if fresh and not joined:
            hosts.unlink(missing_ok=True)
        raise
    hostsfile.write_hosts(hosts, members)
    return hosts, members, time.monotonic() - t0


def _abort(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        # srun and mpirun pass SIGTERM on to their tasks.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_members(hosts: Path, n: int, proc: subprocess.Popen, launcher_log: Path, timeout: float,
                 progress: bool = True) -> list[hostsfile.Host]:
    from gkfs_client.rpc import Call, Rpc
    from gkfs_client.transport import ZmqTransport

    deadline = time.monotonic() + timeout
    key = security.client_credentials(hosts)
    up: dict[int, hostsfile.Host] = {}
    shown = -1
    while True:
        if proc.poll() is not None:
            raise LaunchError(f"the launcher exited with status {proc.returncode} while {n - len(up)} of {n} "
                              f"daemon(s) were not up (missing ids "
                              f"{_ids(set(range(n)) - set(up))}):\n{_logs_tail(hosts, launcher_log, up, n)}")
        fresh = []
        for i in range(n):
            if i not in up:
                h = hostsfile.read_entry(hosts, i)
                if h is not None:
                    fresh.append(h)
        if fresh:
            rpc = Rpc(ZmqTransport([h.address for h in fresh], key=key), timeout_s=2.0)
            try:
                replies = rpc.call_each([Call(k, "ping") for k in range(len(fresh))])
            finally:
                rpc.close()
            for h, r in zip(fresh, replies):
                if not isinstance(r, OSError) and not r.status:
                    up[h.id] = h
        if progress and len(up) != shown:
            shown = len(up)
            print(f"gkfs-ctl cluster start: {shown}/{n} daemons up", file=sys.stderr, flush=True)
        if len(up) == n:
            return [up[i] for i in range(n)]
        if time.monotonic() > deadline:
            raise LaunchError(f"only {len(up)} of {n} daemons registered and answered ping within "
                              f"{timeout:g} s (missing ids {_ids(set(range(n)) - set(up))}):\n"
                              f"{_logs_tail(hosts, launcher_log, up, n)}")
        time.sleep(POLL_S)


def _ids(ids: set[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _logs_tail(hosts: Path, launcher_log: Path, up: dict, n: int) -> str:
    from gkfs_client.ctl.cluster import _tail

    parts = [f"--- {launcher_log}:\n{_tail(launcher_log)}"]
    for i in sorted(set(range(n)) - set(up))[:3]:
        log = logs_dir(hosts) / f"daemon-{i}.log"
        if log.exists():
            parts.append(f"--- {log}:\n{_tail(log)}")
    return "\n".join(parts)


# --------------------------------------------------------------------- stop

def stop(hosts: Path, rec: LaunchRecord, timeout: float) -> list[str]:
    """Stop every member through the engine; returns problems (empty = clean)."""
    node_stop = [*_ctl_command(), "--hosts-file", str(hosts), "cluster", "stop", "--node-only",
                 "--timeout", str(timeout)]
    if rec.engine == "slurm":
        cmd = slurm_prefix(rec.node_count, []) + node_stop
    else:
        cmd = mpirun_prefix(rec.mpirun or "mpirun", rec.nodes, []) + node_stop
    problems: list[str] = []
    try:
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout + 60)
        if cp.returncode != 0:
            problems.append(f"per-node stop through {rec.engine} exited {cp.returncode}:\n"
                            f"{(cp.stdout + cp.stderr)[-3000:]}")
    except subprocess.TimeoutExpired:
        problems.append(f"per-node stop through {rec.engine} did not finish within {timeout + 60:g} s")
    if rec.launcher_host == socket.gethostname():
        if problems and _running(rec.launcher_pid):
            # The per-node stop did not get everywhere (a node unreachable?):
            # SIGTERM the launcher, which srun and mpirun pass on to every task.
            try:
                os.killpg(rec.launcher_pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + timeout
        while _running(rec.launcher_pid) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if _running(rec.launcher_pid):
            problems.append(f"the {rec.engine} launcher (pid {rec.launcher_pid}) still runs after {timeout:g} s")
    # Entries appear gone late on a shared file system: give them a moment.
    deadline = time.monotonic() + 10
    while True:
        left = [i for i in range(rec.members) if _entry_present(hosts, i)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for i in left:
        problems.append(f"daemon {i} did not remove its entry {hostsfile.entries_dir(hosts) / str(i)} "
                        f"(not stopped cleanly; see {logs_dir(hosts) / f'daemon-{i}.log'})")
    if not problems:
        # The cluster record stays: the same cluster can be started again.
        LaunchRecord.path(hosts).unlink(missing_ok=True)
        try:
            hostsfile.entries_dir(hosts).rmdir()
        except OSError:
            pass
    return problems


def _entry_present(hosts: Path, i: int) -> bool:
    try:
        return hostsfile.read_entry(hosts, i) is not None
    except hostsfile.HostsFileError:
        return True


def _running(pid: int) -> bool:
    return hostsfile.pid_alive(pid) and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False
