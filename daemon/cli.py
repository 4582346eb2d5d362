"""gkfs-daemon: command line, start-up and orderly shutdown.

Start-up: resolve the config (flags > --config file > defaults), take the
rootdir (exclusive flock, so two daemons never share one), open LMDB and
the chunk store, bind, and only then register in the hosts file, so a
listed daemon always answers. SIGINT/SIGTERM: leave the hosts file (no new
clients find us), stop reading requests, let the in-flight ones finish,
close LMDB, exit 0.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
from pathlib import Path

from gkfs_client import hostsfile, protocol, security
from gkfs_client.config import ConfigError, DaemonConfig, daemon_config

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
                   "outside it (default: first free <runtime dir>/daemon-<n>, runtime dir = "
                   "$XDG_RUNTIME_DIR/gkfs or /tmp/gkfs-<uid>)")
    p.add_argument("--listen", help=f"ZeroMQ endpoint: tcp://HOST:PORT (port 0 or * = any free port) or "
                   f"ipc:///path (default {d.listen})")
    p.add_argument("--hosts-file", help="cluster hosts file to register in (default: $LIBGKFS_HOSTS_FILE, "
                   "else <runtime dir>/hosts)")
    p.add_argument("--config", help="TOML config file ([daemon] table, see configs/gkfs.toml)")
    p.add_argument("--chunk-size", type=int, help=f"chunk size in bytes, a power of two >= 4096, the same on the whole cluster "
                   f"(default {d.chunk_size})")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    p.add_argument("--log-file", help="also append the log to this file")
    p.add_argument("--id", type=int, help="host id in the hosts file (placement order); default: the id "
                   "this rootdir had before, else the smallest free one")
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


def load_identity(rootdir: Path, cfg: DaemonConfig, want_id: int | None) -> int | None:
    """Check the rootdir's recorded identity; a rootdir keeps its id and chunk size.

    Reusing a rootdir with another id or chunk size would make its chunks
    unreachable (placement and chunk boundaries change), so that is refused.
    """
    path = rootdir / "daemon.json"
    try:
        ident = json.loads(path.read_text())
    except FileNotFoundError:
        return want_id
    if ident.get("chunk_size") != cfg.chunk_size:
        raise StartupError(f"rootdir {rootdir} holds data written with chunk size {ident.get('chunk_size')}, "
                           f"not {cfg.chunk_size}")
    if want_id is not None and ident.get("id") != want_id:
        raise StartupError(f"rootdir {rootdir} belongs to daemon id {ident.get('id')}, not {want_id}")
    return ident.get("id")


def save_identity(rootdir: Path, host_id: int, cfg: DaemonConfig) -> None:
    tmp = rootdir / "daemon.json.tmp"
    tmp.write_text(json.dumps({"id": host_id, "chunk_size": cfg.chunk_size,
                               "protocol": protocol.PROTOCOL_VERSION}) + "\n")
    os.replace(tmp, rootdir / "daemon.json")


def normalise_listen(listen: str) -> str:
    if listen.startswith("tcp://") and listen.endswith(":0"):
        return listen[:-2] + ":*"
    return listen


def published_address(bound: str) -> str:
    """An address a client can connect to (a wildcard bind is published as loopback)."""
    if bound.startswith("tcp://0.0.0.0:"):
        return "tcp://127.0.0.1:" + bound.rsplit(":", 1)[1]
    return bound


def run(cfg: DaemonConfig, want_id: int | None) -> int:
    rootdir, lock_fd = take_rootdir(cfg)
    host_id = load_identity(rootdir, cfg, want_id)
    hosts_path = cfg.hosts_path()
    mode = security.security_mode(cfg.security or None)
    security.ensure_private_dir(hosts_path.parent, what="gkfs hosts file dir")
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
                        cap_secret=key.cap_secret if key else None)
    server = Server(state, normalise_listen(cfg.listen), key, keys)
    state.address = published_address(server.address)
    # Signals only set a flag; the broker loop notices within 100 ms.
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    host = hostsfile.register(hosts_path, state.address, host_id=host_id, mount=cfg.mount)
    state.host_id = host.id
    save_identity(rootdir, host.id, cfg)
    log.info("daemon id %d serving %s (rootdir %s, hosts file %s, chunk size %d, %d workers)",
             host.id, state.address, rootdir, hosts_path, cfg.chunk_size, cfg.workers)
    try:
        server.serve()
    finally:
        log.info("stopping: leaving %s", hosts_path)
        try:
            hostsfile.unregister(hosts_path, host.id)
        except Exception:
            log.exception("could not remove own line from %s", hosts_path)
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
    setup_logging(cfg)
    if args.id is not None and args.id < 0:
        print("gkfs-daemon: --id must be >= 0", file=sys.stderr)
        return 2
    try:
        return run(cfg, args.id)
    except (StartupError, hostsfile.HostsFileError, security.SecurityError) as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:
        # zmq bind errors and the like: a clear one-line message, not a traceback
        log.error("cannot start: %s", exc, exc_info=cfg.log_level == "debug")
        return 1


if __name__ == "__main__":
    sys.exit(main())
