"""The hosts file: how clients find the daemons of a cluster.

Format (UTF-8 text, one daemon per line, fields separated by one space):

    # gkfs hosts file v1
    <id> <address> <pid> <hostname> <mount>

``id`` is a non-negative integer, unique in the file; placement uses the
hosts ordered by ascending id (distribution.py). ``address`` is the ZeroMQ
endpoint the daemon bound (tcp://127.0.0.1:40123 or ipc:///path). No field
may contain whitespace. Lines starting with '#' and blank lines are ignored.

Default location: $XDG_RUNTIME_DIR/gkfs/hosts, or /tmp/gkfs-<uid>/hosts when
XDG_RUNTIME_DIR is unset. Lookup order: an explicit path (--hosts-file),
else $LIBGKFS_HOSTS_FILE, else the default.

Writers (daemons registering or leaving) take an exclusive flock on a
sibling lock file, read, modify and atomically replace the file (temp file
+ fsync + rename), so N daemons starting at once each appear exactly once,
readers never see a half-written file, and a daemon that stops removes only
its own line.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import security

ENV_HOSTS_FILE = "LIBGKFS_HOSTS_FILE"
HEADER = "# gkfs hosts file v1: <id> <address> <pid> <hostname> <mount>\n"
START_HINT = ("start a cluster with 'gkfs-ctl cluster start -n 3' or 'gkfs-daemon --mount /gkfs', "
              "or point --hosts-file / LIBGKFS_HOSTS_FILE at a running cluster's hosts file")


class HostsFileError(Exception):
    """A hosts file that cannot be used (bad line, duplicate id...)."""


class HostsFileMissing(HostsFileError, FileNotFoundError):
    """No hosts file at the resolved path: no cluster is running there."""

    def __init__(self, path: Path):
        self.path = Path(path)
        super().__init__(f"gkfs hosts file not found: {path} ({START_HINT})")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True, order=True)
class Host:
    id: int
    address: str
    pid: int
    hostname: str
    mount: str = "/gkfs"

    def line(self) -> str:
        for value in (self.address, self.hostname, self.mount):
            if not value or any(c.isspace() for c in value):
                raise HostsFileError(f"hosts file field may not be empty or contain whitespace: {value!r}")
        return f"{self.id} {self.address} {self.pid} {self.hostname} {self.mount}\n"


def runtime_dir() -> Path:
    """Per-user runtime directory for gkfs: $XDG_RUNTIME_DIR/gkfs or /tmp/gkfs-<uid>."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "gkfs"
    return Path(f"/tmp/gkfs-{os.getuid()}")


def default_hosts_file() -> Path:
    return runtime_dir() / "hosts"


def resolve_hosts_file(explicit: str | os.PathLike | None = None) -> Path:
    """--hosts-file, else $LIBGKFS_HOSTS_FILE, else the default location."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_HOSTS_FILE)
    if env:
        return Path(env)
    return default_hosts_file()


def parse_hosts(text: str, path: str = "<hosts>") -> list[Host]:
    hosts: list[Host] = []
    seen: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            raise HostsFileError(f"{path}:{lineno}: expected '<id> <address> <pid> <hostname> <mount>'")
        try:
            hid = int(fields[0])
            pid = int(fields[2]) if len(fields) > 2 else 0
        except ValueError:
            raise HostsFileError(f"{path}:{lineno}: id and pid must be integers: {line!r}") from None
        if hid < 0:
            raise HostsFileError(f"{path}:{lineno}: negative id {hid}")
        if hid in seen:
            raise HostsFileError(f"{path}:{lineno}: duplicate id {hid}")
        seen.add(hid)
        hostname = fields[3] if len(fields) > 3 else "localhost"
        mount = fields[4] if len(fields) > 4 else "/gkfs"
        hosts.append(Host(hid, fields[1], pid, hostname, mount))
    hosts.sort(key=lambda h: h.id)
    return hosts


def read_hosts(path: str | os.PathLike | None = None) -> list[Host]:
    """Hosts of the cluster, ordered by id (the placement order).

    Raises HostsFileMissing when there is no file, HostsFileError when it
    is malformed, lists no daemon, or is unsafe: owned by another user (not
    root) or writable by others, or in such a directory (someone could
    swap in their own daemons' addresses).
    """
    p = resolve_hosts_file(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise HostsFileMissing(p) from None
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        try:
            security.check_safe(p.parent, what="gkfs hosts file dir")
            security.check_safe(p, what="gkfs hosts file", st_result=os.fstat(f.fileno()))
        except security.SecurityError as exc:
            raise HostsFileError(str(exc)) from None
        text = f.read()
    hosts = parse_hosts(text, str(p))
    if not hosts:
        raise HostsFileError(f"gkfs hosts file {p} lists no daemon ({START_HINT})")
    return hosts


# --------------------------------------------------------------------------
# Writers (daemons)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Per-user runtime state: private to the user, like $XDG_RUNTIME_DIR;
    # a directory another user created or can write is refused.
    try:
        security.ensure_private_dir(path.parent, what="gkfs hosts file dir")
    except security.SecurityError as exc:
        raise HostsFileError(str(exc)) from None
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_unlocked(path: Path) -> list[Host]:
    try:
        return parse_hosts(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        return []


def _write_atomic(path: Path, hosts: list[Host]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(HEADER)
            for h in sorted(hosts, key=lambda h: h.id):
                f.write(h.line())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (kill(pid, 0))."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register(path: str | os.PathLike, address: str, pid: int | None = None, host_id: int | None = None,
             mount: str = "/gkfs", hostname: str | None = None) -> Host:
    """Add this daemon's line under the lock; returns the Host written.

    With ``host_id`` None the smallest free id is taken. An existing line
    with the same id is replaced only when it is stale (its pid is dead on
    this host, or it is our own pid); otherwise HostsFileError.
    """
    p = Path(path)
    pid = os.getpid() if pid is None else pid
    hostname = hostname or socket.gethostname()
    with _locked(p):
        hosts = _read_unlocked(p)
        if host_id is None:
            used = {h.id for h in hosts}
            host_id = next(i for i in range(len(used) + 1) if i not in used)
        keep = []
        for h in hosts:
            if h.id == host_id:
                if h.pid != pid and h.hostname == hostname and pid_alive(h.pid):
                    raise HostsFileError(
                        f"id {host_id} is already registered in {p} by live pid {h.pid} ({h.address})")
                if h.hostname != hostname and h.pid != pid:
                    raise HostsFileError(f"id {host_id} is already registered in {p} by {h.hostname}")
                continue  # stale line of a daemon that died: replaced
            keep.append(h)
        me = Host(host_id, address, pid, hostname, mount)
        me.line()  # validate fields before writing
        keep.append(me)
        _write_atomic(p, keep)
        return me


def unregister(path: str | os.PathLike, host_id: int, pid: int | None = None) -> bool:
    """Remove only our own line (same id and pid); True if it was there.

    When the last line goes the file is removed, so clients get the clear
    "hosts file not found, start a cluster" error; the lock file stays, so a
    daemon registering concurrently still serialises with us.
    """
    p = Path(path)
    pid = os.getpid() if pid is None else pid
    with _locked(p):
        hosts = _read_unlocked(p)
        keep = [h for h in hosts if not (h.id == host_id and h.pid == pid)]
        if len(keep) == len(hosts):
            return False
        if keep:
            _write_atomic(p, keep)
        else:
            p.unlink()
        return True


# --------------------------------------------------------------------------
# Shared file systems (launchers): one file per member, one writer per file
#
# On a parallel file system shared by the nodes, flock may not work across
# nodes and other nodes' writes appear late, so launched daemons never edit
# the hosts file. Each writes only its own entry ``<hosts>.d/<id>`` (one line
# in hosts-file format, written to a temporary name, fsynced and renamed:
# an entry is absent or complete, never half-written), and removes it when it
# stops. The launcher is the single writer of the hosts file itself: once
# every member's entry is there and the member answers, it writes the whole
# list atomically (write_hosts). Clients read only the hosts file.


def entries_dir(path: str | os.PathLike) -> Path:
    """Directory of the per-member entries of a hosts file: ``<hosts>.d``."""
    return Path(f"{path}.d")


def write_entry(path: str | os.PathLike, host: Host) -> Path:
    """Write this member's own entry (atomic rename); returns its path."""
    d = entries_dir(path)
    security.ensure_private_dir(d, what="gkfs hosts entries dir")
    final = d / str(host.id)
    tmp = d / f".{host.id}.{socket.gethostname()}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(host.line())
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, final)
    return final


def read_entry(path: str | os.PathLike, host_id: int) -> Host | None:
    """The member's entry, or None while it is not there (or not yet visible)."""
    p = entries_dir(path) / str(host_id)
    try:
        with open(p, encoding="utf-8") as f:
            # An entry another user could have planted would point clients at their daemon.
            try:
                security.check_safe(p, what="gkfs hosts entry", st_result=os.fstat(f.fileno()))
            except security.SecurityError as exc:
                raise HostsFileError(str(exc)) from None
            hosts = parse_hosts(f.read(), str(p))
    except FileNotFoundError:
        return None
    if len(hosts) != 1 or hosts[0].id != host_id:
        raise HostsFileError(f"{p}: expected one line for member {host_id}")
    return hosts[0]


def remove_entry(path: str | os.PathLike, host_id: int, pid: int | None = None) -> bool:
    """Remove our own entry (same id, pid and host name); True if it was there."""
    pid = os.getpid() if pid is None else pid
    try:
        h = read_entry(path, host_id)
    except HostsFileError:
        return False
    if h is None or h.pid != pid or h.hostname != socket.gethostname():
        return False
    with contextlib.suppress(FileNotFoundError):
        (entries_dir(path) / str(host_id)).unlink()
    return True


def write_hosts(path: str | os.PathLike, hosts: list[Host]) -> None:
    """Write the whole hosts file at once (the launcher, its single writer)."""
    p = Path(path)
    security.ensure_private_dir(p.parent, what="gkfs hosts file dir")
    _write_atomic(p, hosts)
