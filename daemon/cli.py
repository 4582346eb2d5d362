"""gkfs-daemon: command line, start-up and orderly shutdown.

`--processes P` (default auto: node.auto_processes) > 1 makes
this process the node's supervisor of P member processes (node.py), each of
which runs what follows with `--processes 1`.

Start-up: resolve the config (flags > --config file > defaults), take the
rootdir (exclusive flock, so two daemons never share one), open LMDB and
the chunk store, bind, and only then register in the hosts file, so a
listed daemon always answers. SIGINT/SIGTERM: leave the hosts file (no new
clients find us), stop reading requests, let the in-flight ones finish,
close LMDB, exit 0.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from gkfs_client import hostsfile, local_stream, netif, protocol, security
from gkfs_client.config import ConfigError, DaemonConfig, daemon_config

from . import memory, node
from .chunkstore import ChunkStore
from .handlers import DaemonState
from .metadata import MetadataStore
from .server import Server

log = logging.getLogger("gkfs_daemon")


class StartupError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    d = DaemonConfig()
    p = argparse.ArgumentParser(
        prog="gkfs-daemon",
        description="Serve one gkfs storage daemon: metadata in LMDB and file data as chunk files under "
                    "its root dir, reached over ZeroMQ. Runs until SIGINT/SIGTERM, then leaves the hosts "
                    "file and exits 0. Precedence: flags > --config file > built-in defaults "
                    "(configs/gkfs.toml lists them).",
    )
    p.add_argument("--mount", help=f"mount prefix clients use, recorded in the hosts file (default {d.mount})")
    p.add_argument("--rootdir", help="directory for this daemon's metadata and chunks; nothing is written "
                   "outside it; %%i is replaced by the id and %%h by the host name (default: first free "
                   "<runtime dir>/daemon-<n>, runtime dir = $XDG_RUNTIME_DIR/gkfs or /tmp/gkfs-<uid>)")
    p.add_argument("--listen", help=f"ZeroMQ endpoint: tcp://HOST:PORT (port 0 or * = any free port) or "
                   f"ipc:///path; HOST may also be an interface name (eth0), a network (10.87.0.0/24: this "
                   f"node's address in it) or 'auto' (the default route's interface), and the short forms "
                   f"eth0, 10.87.0.0/24, auto mean port *; a wildcard bind publishes the 'auto' address "
                   f"(default {d.listen})")
    p.add_argument("--hosts-file", help="cluster hosts file to register in (default: $LIBGKFS_HOSTS_FILE, "
                   "else <runtime dir>/hosts)")
    p.add_argument("--config", help="TOML config file ([daemon] table, see configs/gkfs.toml)")
    p.add_argument("--chunk-size", type=int, help=f"chunk size in bytes, a power of two >= 4096, the same on the whole cluster "
                   f"(default {d.chunk_size})")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    p.add_argument("--log-file", help="also append the log to this file (%%i = the id, %%h = the host name)")
    p.add_argument("--id", type=int, help="member id, 0 <= id < members (its placement slot); default: the "
                   "id this rootdir had before, else the smallest free slot")
    p.add_argument("--members", type=int, help="member count N of the cluster. With no cluster record in the "
                   "hosts file, one is created for N members (default 1); with a record, N must match it. "
                   "The count is fixed for the cluster's life: placement depends on it")
    p.add_argument("--id-from-rank", action="store_true",
                   help="take the id from the launcher's task rank ($SLURM_PROCID under srun, "
                   "$OMPI_COMM_WORLD_RANK / $PMIX_RANK / $PMI_RANK under mpirun); used by "
                   "'gkfs-ctl cluster start --slurm/--mpirun'")
    p.add_argument("--shared-fs", action="store_true",
                   help="register in this member's own entry <hosts-file>.d/<id> instead of editing the "
                   "hosts file under flock (for hosts files on a shared file system, where flock may not "
                   "work across nodes); the cluster record must exist (the launcher writes it first)")
    p.add_argument("--processes", default="auto", metavar="auto|P",
                   help="member processes on this node (default auto: one per core of a CPU set narrower than the "
                   "machine that this process was given, len(sched_getaffinity), e.g. a Slurm job step's CPUs; "
                   "if it may run on every CPU, half of them, at least 1, leaving the rest to the job's own "
                   "processes on the node). One Python process uses one core, "
                   "so each member is a full daemon with its own endpoint, its own part of the root dir "
                   "(<rootdir>/proc-<k>, or --rootdir with %%i per member id) and its own slot in the cluster "
                   "(ids --id .. --id+P-1; with --id-from-rank: rank*P .. rank*P+P-1); this process supervises "
                   "them. auto never exceeds the cluster's member count and reuses the process count a root "
                   "dir was used with. 1: this process is the daemon itself")
    p.add_argument("--workers", type=int, help=f"request worker threads (default {d.workers})")
    p.add_argument("--max-frame-size", type=int, help=f"largest frame/message accepted (default {d.max_frame_size})")
    p.add_argument("--security", choices=security.MODES,
                   help="curve (default, else $LIBGKFS_SECURITY): authenticated, encrypted connections; only "
                   "client keys issued by the cluster's owner get in, permissions enforced for the key's "
                   "uid/gid. off: PLAIN TCP, NO AUTHENTICATION: anyone reaching the port acts as the "
                   "cluster's owner; only for a trusted private network")
    return p


def setup_logging(cfg: DaemonConfig) -> None:
    fmt = logging.Formatter("%(asctime)s gkfs-daemon[%(process)d] %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(cfg.log_level.upper())
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(fmt)
    root.addHandler(h)
    if cfg.log_file:
        fh = logging.FileHandler(cfg.log_file)
        _owner_only(Path(cfg.log_file))
        fh.setFormatter(fmt)
        root.addHandler(fh)


def _owner_only(path: Path) -> None:
    """Tighten a file or directory we own to owner-only (a log or rootdir left
    readable by an older version); refuse one another user owns."""
    s = os.stat(path)
    if s.st_uid != os.geteuid():
        raise StartupError(f"{path} is owned by uid {s.st_uid}, not by you (uid {os.geteuid()}): another "
                           f"user may have planted it; remove it or choose another path")
    if s.st_mode & 0o077:
        os.chmod(path, s.st_mode & 0o7700)


def _try_lock(rootdir: Path) -> int | None:
    rootdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _owner_only(rootdir)
    fd = os.open(rootdir / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def take_rootdir(cfg: DaemonConfig) -> tuple[Path, int]:
    """The rootdir and its lock fd (held for the daemon's life)."""
    if cfg.rootdir:
        rootdir = Path(cfg.rootdir).resolve()
        fd = _try_lock(rootdir)
        if fd is None:
            raise StartupError(f"rootdir {rootdir} is in use by another running gkfs-daemon")
        return rootdir, fd
    base = security.ensure_private_dir(hostsfile.runtime_dir())
    for n in range(1024):
        rootdir = base / f"daemon-{n}"
        fd = _try_lock(rootdir)
        if fd is not None:
            return rootdir, fd
    raise StartupError(f"no free rootdir under {base}")


def load_identity(rootdir: Path) -> dict | None:
    """The rootdir's recorded identity (daemon.json), None for a new rootdir."""
    path = rootdir / "daemon.json"
    try:
        ident = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        raise StartupError(f"rootdir {rootdir}: unreadable identity {path}: {exc}") from None
    if not isinstance(ident, dict):
        raise StartupError(f"rootdir {rootdir}: identity {path} is not a JSON object")
    return ident


def check_identity(rootdir: Path, ident: dict | None, cfg: DaemonConfig, want_id: int | None,
                   want_members: int | None) -> None:
    """A rootdir keeps its cluster, id, member count and chunk size.

    Reusing it with another would make its data unreachable or, worse,
    answer for paths it does not hold (placement and chunk boundaries
    change), so that is refused before anything is written.
    """
    if ident is None:
        return
    if ident.get("chunk_size") != cfg.chunk_size:
        raise StartupError(f"rootdir {rootdir} holds data written with chunk size {ident.get('chunk_size')}, "
                           f"not {cfg.chunk_size}")
    if want_id is not None and ident.get("id") != want_id:
        raise StartupError(f"rootdir {rootdir} belongs to daemon id {ident.get('id')}, not {want_id}")
    if want_members is not None and ident.get("members") not in (None, want_members):
        raise StartupError(f"rootdir {rootdir} belongs to a {ident.get('members')}-member cluster "
                           f"({ident.get('cluster')}), not a {want_members}-member one: a cluster's size "
                           "is fixed when it is created")


def cluster_record(hosts_path: Path, rootdir: Path, ident: dict | None, cfg: DaemonConfig,
                   want_members: int | None) -> hostsfile.ClusterRecord:
    """The cluster this daemon joins: the hosts file's record, created when absent.

    With no record, a rootdir that already belongs to a cluster writes that
    cluster's record again (same uuid and size: a restart after the file was
    lost); a new rootdir creates a cluster of --members (default 1).
    """
    try:
        record = hostsfile.read_record(hosts_path)
    except hostsfile.HostsFileMissing:
        record = None
    if record is None:
        # create_cluster: exactly once among daemons racing; an existing
        # file without a record (v1) is refused there with a clear message.
        if ident and ident.get("cluster") and ident.get("members"):
            record, _ = hostsfile.create_cluster(hosts_path, ident["members"], cfg.chunk_size, cfg.mount,
                                                 cluster_uuid=ident["cluster"])
        else:
            record, _ = hostsfile.create_cluster(hosts_path, want_members or 1, cfg.chunk_size, cfg.mount)
    if want_members is not None and want_members != record.members:
        raise StartupError(f"{hosts_path} records a {record.members}-member cluster ({record.uuid}), not "
                           f"{want_members}: a cluster's size is fixed when it is created (use another "
                           "--hosts-file for a new cluster)")
    if record.chunk_size != cfg.chunk_size:
        raise StartupError(f"the cluster of {hosts_path} uses chunk size {record.chunk_size}, not "
                           f"{cfg.chunk_size} (pass --chunk-size {record.chunk_size})")
    if ident and ident.get("cluster") and ident["cluster"] != record.uuid:
        raise StartupError(f"rootdir {rootdir} belongs to cluster {ident['cluster']} "
                           f"({ident.get('members')} members), but {hosts_path} records cluster {record.uuid} "
                           f"({record.members} members): a rootdir serves only its own cluster (use that "
                           "cluster's hosts file, or another rootdir)")
    if ident and ident.get("id") is not None and not 0 <= ident["id"] < record.members:
        raise StartupError(f"rootdir {rootdir} belongs to member id {ident['id']}, outside the "
                           f"{record.members}-member cluster of {hosts_path}")
    return record


def save_identity(rootdir: Path, host_id: int, cfg: DaemonConfig, record: hostsfile.ClusterRecord) -> None:
    tmp = rootdir / "daemon.json.tmp"
    tmp.write_text(json.dumps({"cluster": record.uuid, "members": record.members, "id": host_id,
                               "chunk_size": cfg.chunk_size, "protocol": protocol.PROTOCOL_VERSION}) + "\n")
    os.replace(tmp, rootdir / "daemon.json")


def normalise_listen(listen: str) -> str:
    if listen.startswith("tcp://") and listen.endswith(":0"):
        return listen[:-2] + ":*"
    return listen


def published_address(bound: str, publish_host: str | None = None) -> str:
    """The address clients connect to: never a wildcard (publish_host or loopback instead)."""
    if bound.startswith("tcp://0.0.0.0:"):
        return f"tcp://{publish_host or '127.0.0.1'}:" + bound.rsplit(":", 1)[1]
    return bound


RANK_VARIABLES = ("SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK")
SIZE_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def tasks_from_env() -> int | None:
    """How many tasks the launcher started (one node daemon each), if it says."""
    for name in SIZE_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit() and int(value) > 0:
            return int(value)
    return None


def rank_from_env() -> int:
    """This task's rank as srun or mpirun/mpiexec set it."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    raise StartupError(f"--id-from-rank: none of {', '.join(RANK_VARIABLES)} is set; start the daemons "
                       "with srun or mpirun (gkfs-ctl cluster start --slurm/--mpirun), or give --id")


def expand_patterns(cfg: DaemonConfig, host_id: int | None) -> DaemonConfig:
    """In rootdir and log_file: %i -> the id, %h -> the host name (one pattern
    for every node of a launch)."""
    changes = {}
    for name in ("rootdir", "log_file"):
        value = getattr(cfg, name)
        if "%i" in value and host_id is None:
            raise StartupError(f"--{name.replace('_', '-')} uses %i but the id is not known yet: "
                               "give --id or --id-from-rank")
        if "%" in value:
            changes[name] = value.replace("%h", socket.gethostname()).replace("%i", str(host_id))
    return dataclasses.replace(cfg, **changes) if changes else cfg


def run(cfg: DaemonConfig, want_id: int | None, want_members: int | None = None, shared_fs: bool = False,
        taken: tuple[Path, int] | None = None) -> int:
    if shared_fs and want_id is None:
        raise StartupError("--shared-fs needs a fixed id: give --id or --id-from-rank")
    memory.configure(cfg.chunk_size)  # data buffers from malloc's arenas (daemon/memory.py)
    bind, publish_host = netif.resolve_listen(cfg.listen)
    rootdir, lock_fd = taken or take_rootdir(cfg)
    ident = load_identity(rootdir)
    check_identity(rootdir, ident, cfg, want_id, want_members)
    hosts_path = cfg.hosts_path()
    mode = security.security_mode(cfg.security or None)
    security.ensure_private_dir(hosts_path.parent, what="gkfs hosts file dir")
    if shared_fs and hostsfile.read_record_or_none(hosts_path) is None:
        raise StartupError(f"--shared-fs: {hosts_path} holds no cluster record; the launcher writes it before "
                           "starting the daemons (gkfs-ctl cluster start --slurm/--mpirun)")
    record = cluster_record(hosts_path, rootdir, ident, cfg, want_members)
    if want_id is not None and want_id >= record.members:
        raise StartupError(f"--id {want_id} is outside the {record.members}-member cluster of {hosts_path} "
                           f"(ids 0..{record.members - 1})")
    host_id = want_id if want_id is not None else (ident or {}).get("id")
    key = keys = None
    if mode == "curve":
        keys = security.ensure_cluster_keys(hosts_path)
        key = security.load_server_key(hosts_path)
    else:
        log.warning("SECURITY IS OFF (--security off / LIBGKFS_SECURITY=off): plain TCP, no authentication, no "
                    "encryption; anybody who can reach %s acts as the cluster's owner", cfg.listen)
    meta = MetadataStore(rootdir / "metadata", sync=cfg.sync)
    chunks = ChunkStore(rootdir, cfg.chunk_size)
    state = DaemonState(config=cfg, rootdir=rootdir, host_id=-1, meta=meta, chunks=chunks,
                        cap_secret=key.cap_secret if key else None, cluster=record.uuid, members=record.members)
    if key is not None:
        from .peer import Peers
        state.peers = Peers(hosts_path, key, meta.get_many, state.count)
        from .siblings import SiblingRecords
        state.peers.siblings = SiblingRecords.from_env(rootdir, record.uuid, hosts_path)
    server = Server(state, normalise_listen(bind), key, keys)
    state.address = published_address(server.address, publish_host)
    # Signals only set a flag; the broker loop notices within 100 ms.
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if shared_fs:
        host = hostsfile.Host(host_id, state.address, os.getpid(), socket.gethostname(), cfg.mount)
        hostsfile.write_entry(hosts_path, host)
        leave = lambda: hostsfile.remove_entry(hosts_path, host.id)  # noqa: E731
        where = hostsfile.entries_dir(hosts_path) / str(host.id)
    else:
        host = hostsfile.register(hosts_path, state.address, host_id=host_id, mount=cfg.mount)
        leave = lambda: hostsfile.unregister(hosts_path, host.id)  # noqa: E731
        where = hosts_path
    state.host_id = host.id
    if state.peers is not None:
        state.peers.host_id = host.id
    save_identity(rootdir, host.id, cfg, record)
    # The local stream (docs/protocol.md 1.1): its name comes from the
    # member's hosts-file entry, so it is bound once that is written; a
    # client that finds no listener yet uses TCP meanwhile.
    local_name = local_stream.local_name(record.uuid, host.id, state.address)
    try:
        server.listen_local(local_name)
    except OSError as exc:
        log.warning("local stream: cannot listen on %r (%s): local clients of this member use TCP",
                    local_name, exc.strerror or exc)
    log.info("daemon id %d of %d (cluster %s) serving %s on %s (rootdir %s, registered in %s, chunk size %d, "
             "%d workers)", host.id, record.members, record.uuid, state.address, host.hostname, rootdir, where,
             cfg.chunk_size, cfg.workers)
    try:
        server.serve()
    finally:
        log.info("stopping: leaving %s", where)
        try:
            leave()
        except Exception:
            log.exception("could not remove own entry from %s", where)
        server.close()
        meta.sync()
        meta.close()
        os.close(lock_fd)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        "mount": args.mount, "rootdir": args.rootdir, "listen": args.listen, "hosts_file": args.hosts_file,
        "chunk_size": args.chunk_size, "log_level": args.log_level, "log_file": args.log_file,
        "workers": args.workers, "max_frame_size": args.max_frame_size, "security": args.security,
    }
    # Everything the daemon creates (rootdir, LMDB files, chunks, logs,
    # hosts file) is the owner's alone.
    os.umask(0o077)
    try:
        cfg = daemon_config(args.config, overrides)
    except ConfigError as exc:
        print(f"gkfs-daemon: {exc}", file=sys.stderr)
        return 2
    if args.id is not None and args.id < 0:
        print("gkfs-daemon: --id must be >= 0", file=sys.stderr)
        return 2
    if args.members is not None and not 1 <= args.members <= hostsfile.MAX_MEMBERS:
        print(f"gkfs-daemon: --members must be 1..{hostsfile.MAX_MEMBERS}", file=sys.stderr)
        return 2
    if args.id is not None and args.id_from_rank:
        print("gkfs-daemon: give --id or --id-from-rank, not both", file=sys.stderr)
        return 2
    try:
        processes = node.parse_processes(args.processes)
    except ValueError:
        print(f"gkfs-daemon: --processes must be 'auto' or a number >= 1, not {args.processes!r}", file=sys.stderr)
        return 2
    try:
        rank = rank_from_env() if args.id_from_rank else None
    except StartupError as exc:
        print(f"gkfs-daemon: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = expand_host(cfg)
        plan = plan_node(cfg, processes, args.id, rank, args.members)
    except (StartupError, node.NodeStartupError, hostsfile.HostsFileError, security.SecurityError) as exc:
        print(f"gkfs-daemon: {exc}", file=sys.stderr)
        return 1
    processes, first_id, taken = plan
    if processes > 1:
        return run_node(build_parser(), args, cfg, processes, first_id, taken)
    try:
        cfg = expand_patterns(cfg, first_id)
    except StartupError as exc:
        print(f"gkfs-daemon: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg)
    try:
        return run(cfg, first_id, args.members, shared_fs=args.shared_fs, taken=taken)
    except (StartupError, hostsfile.HostsFileError, netif.ListenError, security.SecurityError) as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:
        # zmq bind errors and the like: a clear one-line message, not a traceback
        log.error("cannot start: %s", exc, exc_info=cfg.log_level == "debug")
        return 1


def expand_host(cfg: DaemonConfig) -> DaemonConfig:
    """%h -> the host name in rootdir and log_file (%i is per member: later)."""
    changes = {name: getattr(cfg, name).replace("%h", socket.gethostname())
               for name in ("rootdir", "log_file") if "%h" in getattr(cfg, name)}
    return dataclasses.replace(cfg, **changes) if changes else cfg


def plan_node(cfg: DaemonConfig, processes: int | None, id_arg: int | None, rank: int | None,
              members_arg: int | None) -> tuple[int, int | None, tuple[Path, int] | None]:
    """(member processes, first member id, root dir taken now with its lock fd).

    A root dir without %i is taken (locked) here: its layout decides auto and
    is checked against an explicit count; with P > 1 this process keeps its
    lock and the members live in its proc-<k> subdirectories.
    """
    taken = None
    layout = None
    if "%i" not in cfg.rootdir:
        taken = take_rootdir(cfg)
        layout = node.rootdir_layout(taken[0])
    try:
        if processes is None:
            if layout is not None:
                processes = layout  # a restart finds its data where it left it
            else:
                processes = node.auto_processes()
                cap = members_arg
                if cap is None:
                    try:
                        record = hostsfile.read_record_or_none(cfg.hosts_path())
                    except hostsfile.HostsFileError:
                        record = None
                    cap = record.members if record else None
                tasks = tasks_from_env() if rank is not None else None
                if cap is not None and tasks and cap % tasks == 0:
                    processes = cap // tasks  # the same on every node: N tasks x P members
                elif cap is not None:
                    processes = max(1, min(processes, cap - (id_arg or 0)))
        if taken is not None:
            node.check_layout(taken[0], processes)
    except BaseException:
        if taken is not None:
            os.close(taken[1])
        raise
    first_id = id_arg if id_arg is not None else (rank * processes if rank is not None else None)
    return processes, first_id, taken


def run_node(parser: argparse.ArgumentParser, args, cfg: DaemonConfig, processes: int, first_id: int | None,
             taken: tuple[Path, int] | None) -> int:
    """Supervise `processes` member processes (node.py)."""
    setup_logging(dataclasses.replace(cfg, log_file="" if "%i" in cfg.log_file else cfg.log_file))
    try:
        if args.shared_fs and first_id is None:
            raise StartupError("--shared-fs needs a fixed id: give --id or --id-from-rank")
        for name in ("rootdir", "log_file"):
            if "%i" in getattr(cfg, name) and first_id is None:
                raise StartupError(f"--{name.replace('_', '-')} uses %i but the member ids are not known: "
                                   "give --id or --id-from-rank")
        netif.resolve_listen(cfg.listen)  # a bad --listen: one clear error, not one per member
        members = args.members
        if members is None and not first_id:
            try:
                record = hostsfile.read_record_or_none(cfg.hosts_path())
            except hostsfile.HostsFileError:
                record = None
            if record is None and not args.shared_fs:
                members = processes  # a new one-node cluster of P members
        base = taken[0] if taken else None
        plan = node.plan_members(parser, args, cfg, processes, first_id, members, base)
        ids = f"ids {first_id}..{first_id + processes - 1}" if first_id is not None else "ids by slot"
        log.info("starting %d member processes (%s) on %s; root dirs %s", processes, ids,
                 socket.gethostname(), ", ".join(m.rootdir for m in plan))
        return node.supervise(plan, cfg.hosts_path())
    except (StartupError, netif.ListenError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        if taken is not None:
            os.close(taken[1])


if __name__ == "__main__":
    sys.exit(main())
