"""The hosts file: a cluster's fixed membership and where its members listen.

Format v2 (docs/protocol.md section 6). The file ``<hosts>`` holds the
cluster record, written once when the cluster is created and never
rewritten:

    # gkfs hosts file v2
    cluster <uuid> <N> <chunk_size> <mount>

Placement uses N and slot = member id (0 <= id < N), never the number of
members listed now. Each member's entry lives in its own file
``<hosts>.d/<id>``, one line ``<id> <address> <pid> <hostname> <mount>``,
written only by that member (temp file + rename) and removed by it when it
stops in an orderly way: one writer per file, so registration needs no lock
shared between nodes and works on a shared file system where flock does
not. Readers merge: the record, then the entry files of slots 0..N-1
(member lines written inline after the record, e.g. by hand for a static
cluster, count where a slot has no entry file). A slot with no entry is a
member that is down: calls that need it fail with EIO naming it.

Default location: $XDG_RUNTIME_DIR/gkfs/hosts, or /tmp/gkfs-<uid>/hosts when
XDG_RUNTIME_DIR is unset. Lookup order: an explicit path (--hosts-file),
else $LIBGKFS_HOSTS_FILE, else the default.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import tempfile
import uuid as _uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import security

ENV_HOSTS_FILE = "LIBGKFS_HOSTS_FILE"
HEADER = "# gkfs hosts file v2: cluster <uuid> <members> <chunk_size> <mount>; members in <hosts>.d/<id>\n"
MEMBER_HEADER = "# gkfs member entry: <id> <address> <pid> <hostname> <mount>\n"
MAX_MEMBERS = 65536
START_HINT = ("start a cluster with 'gkfs-ctl cluster start -n 3' or 'gkfs-daemon --mount /gkfs', "
              "or point --hosts-file / LIBGKFS_HOSTS_FILE at a running cluster's hosts file")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class HostsFileError(Exception):
    """A hosts file that cannot be used (bad line, duplicate id...)."""


class HostsFileMissing(HostsFileError, FileNotFoundError):
    """No hosts file at the resolved path: no cluster is running there."""

    def __init__(self, path: Path):
        self.path = Path(path)
        super().__init__(f"gkfs hosts file not found: {path} ({START_HINT})")

    def __str__(self) -> str:
        return self.args[0]


class NoMemberRunning(HostsFileError):
    """The cluster record exists but no member is registered."""


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


@dataclass(frozen=True)
class ClusterRecord:
    """What a cluster is, fixed at creation: placement depends on this only."""
    uuid: str
    members: int
    chunk_size: int
    mount: str = "/gkfs"

    def line(self) -> str:
        return f"cluster {self.uuid} {self.members} {self.chunk_size} {self.mount}\n"


@dataclass(frozen=True)
class Membership:
    """The record plus one slot per member id: the Host registered there or None."""
    path: Path
    record: ClusterRecord
    slots: tuple[Host | None, ...]

    @property
    def members(self) -> int:
        return self.record.members

    def listed(self) -> list[Host]:
        return [h for h in self.slots if h is not None]


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


def members_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".d")


def member_file(path: str | os.PathLike, host_id: int) -> Path:
    return members_dir(path) / str(host_id)


# --------------------------------------------------------------------------
# Parsing


def parse_record(fields: list[str], where: str) -> ClusterRecord:
    if len(fields) != 5:
        raise HostsFileError(f"{where}: expected 'cluster <uuid> <members> <chunk_size> <mount>'")
    _, cid, n, cs, mount = fields
    if not _UUID_RE.match(cid):
        raise HostsFileError(f"{where}: cluster id must be a lowercase uuid, got {cid!r}")
    try:
        members, chunk_size = int(n), int(cs)
    except ValueError:
        raise HostsFileError(f"{where}: members and chunk_size must be integers") from None
    if not 1 <= members <= MAX_MEMBERS:
        raise HostsFileError(f"{where}: members must be 1..{MAX_MEMBERS}, got {members}")
    if chunk_size < 4096 or chunk_size & (chunk_size - 1):
        raise HostsFileError(f"{where}: chunk_size must be a power of two >= 4096, got {chunk_size}")
    if not mount.startswith("/"):
        raise HostsFileError(f"{where}: mount must be absolute, got {mount!r}")
    return ClusterRecord(cid, members, chunk_size, mount)


def parse_member(line: str, where: str) -> Host:
    fields = line.split()
    if len(fields) != 5:
        raise HostsFileError(f"{where}: expected '<id> <address> <pid> <hostname> <mount>': {line!r}")
    try:
        hid, pid = int(fields[0]), int(fields[2])
    except ValueError:
        raise HostsFileError(f"{where}: id and pid must be integers: {line!r}") from None
    if hid < 0:
        raise HostsFileError(f"{where}: negative id {hid}")
    return Host(hid, fields[1], pid, fields[3], fields[4])


def parse_hosts_file(text: str, path: str = "<hosts>") -> tuple[ClusterRecord | None, list[Host]]:
    """The cluster record (None if absent) and the member lines written inline."""
    record: ClusterRecord | None = None
    hosts: list[Host] = []
    seen: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        fields = line.split()
        if fields[0] == "cluster":
            if record is not None:
                raise HostsFileError(f"{where}: a second cluster record")
            record = parse_record(fields, where)
            continue
        h = parse_member(line, where)
        if h.id in seen:
            raise HostsFileError(f"{where}: duplicate id {h.id}")
        seen.add(h.id)
        hosts.append(h)
    hosts.sort(key=lambda h: h.id)
    return record, hosts


def _read_member_entry(path: Path, host_id: int) -> Host | None:
    f = member_file(path, host_id)
    try:
        text = _read_safe(f, "gkfs member entry")
    except (FileNotFoundError, NotADirectoryError):
        return None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        raise HostsFileError(f"{f}: expected one member line")
    h = parse_member(lines[0], str(f))
    if h.id != host_id:
        raise HostsFileError(f"{f}: entry names id {h.id}, not {host_id}")
    return h


def _read_safe(p: Path, what: str = "gkfs hosts file") -> str:
    """The text of a hosts file or member entry, refusing one that is unsafe:
    owned by another user (not root) or writable by others, or in such a
    directory (someone could swap in their own daemons' addresses)."""
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        try:
            security.check_safe(p.parent, what=f"{what} dir")
            security.check_safe(p, what=what, st_result=os.fstat(f.fileno()))
        except security.SecurityError as exc:
            raise HostsFileError(str(exc)) from None
        return f.read()


def read_record(path: str | os.PathLike | None = None) -> ClusterRecord | None:
    """The cluster record, None when the file has none; HostsFileMissing when no file."""
    p = resolve_hosts_file(path)
    try:
        text = _read_safe(p)
    except FileNotFoundError:
        raise HostsFileMissing(p) from None
    return parse_hosts_file(text, str(p))[0]


def read_membership(path: str | os.PathLike | None = None) -> Membership:
    """The cluster record and every slot, merged from the file and its entries."""
    p = resolve_hosts_file(path)
    try:
        text = _read_safe(p)
    except FileNotFoundError:
        raise HostsFileMissing(p) from None
    record, inline = parse_hosts_file(text, str(p))
    if record is None:
        raise HostsFileError(
            f"{p} has no cluster record ('cluster <uuid> <members> <chunk_size> <mount>', hosts file v2): "
            f"placement needs the cluster's fixed member count ({START_HINT})")
    slots: list[Host | None] = [None] * record.members
    for h in inline:
        if h.id >= record.members:
            raise HostsFileError(f"{p}: member id {h.id} outside the cluster's {record.members} members")
        slots[h.id] = h
    for i in range(record.members):
        entry = _read_member_entry(p, i)
        if entry is not None:
            slots[i] = entry
    return Membership(p, record, tuple(slots))


def read_member(path: str | os.PathLike, host_id: int) -> Host | None:
    """One slot again (a client re-resolving a member that stopped answering)."""
    p = Path(path)
    entry = _read_member_entry(p, host_id)
    if entry is not None:
        return entry
    try:
        _, inline = parse_hosts_file(_read_safe(p), str(p))
    except FileNotFoundError:
        return None
    return next((h for h in inline if h.id == host_id), None)


def static_text(path: str | os.PathLike | None = None) -> str:
    """A self-contained hosts file: the record and the members registered now
    as inline lines (what an owner hands to another user, who cannot read
    the owner's private ``<hosts>.d``)."""
    m = read_membership(path)
    return HEADER + m.record.line() + "".join(h.line() for h in m.listed())


def read_hosts(path: str | os.PathLike | None = None) -> list[Host]:
    """The members registered now, ordered by id (NOT the placement: see read_membership).

    Raises HostsFileMissing when there is no file, HostsFileError when it
    is malformed, unsafe (see _read_safe) or no member is registered.
    """
    m = read_membership(path)
    hosts = m.listed()
    if not hosts:
        raise NoMemberRunning(f"no member of the {m.members}-member gkfs cluster of {m.path} is registered "
                              f"(none running?): {START_HINT}")
    return hosts


# --------------------------------------------------------------------------
# Writers (cluster creators and daemons)


def _private_parent(path: Path) -> None:
    # Per-user runtime state: private to the user, like $XDG_RUNTIME_DIR;
    # a directory another user created or can write is refused.
    try:
        security.ensure_private_dir(path.parent, what="gkfs hosts file dir")
    except security.SecurityError as exc:
        raise HostsFileError(str(exc)) from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises writers on one node (slot choice); correctness across
    nodes never depends on it (one writer per entry file)."""
    _private_parent(path)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _write_temp(directory: Path, name: str, text: str) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def create_cluster(path: str | os.PathLike, members: int, chunk_size: int, mount: str = "/gkfs",
                   cluster_uuid: str | None = None) -> tuple[ClusterRecord, bool]:
    """Write the cluster record exactly once; returns (record in the file, created by us).

    link(2) of a complete temp file is atomic and fails when the name
    exists (also on NFS), so N creators racing agree on one record and no
    reader sees a partial one. An existing record is returned unchanged:
    the caller compares it with what it wanted.
    """
    p = Path(path)
    want = ClusterRecord(cluster_uuid or str(_uuid.uuid4()), members, chunk_size, mount)
    parse_record(want.line().split(), "new cluster record")  # validate
    _private_parent(p)
    tmp = _write_temp(p.parent, p.name, HEADER + want.line())
    try:
        os.link(tmp, p)
        created = True
    except FileExistsError:
        created = False
    finally:
        os.unlink(tmp)
    if created:
        return want, True
    record = read_record(p)
    if record is None:
        raise HostsFileError(f"{p} exists but holds no cluster record (an old v1 hosts file?): move it away "
                             "or use another --hosts-file")
    return record, False


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A zombie is dead: a daemon killed with -9 stays a zombie until its
    # parent reaps it, and must not block its own restart meanwhile.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no procfs: trust kill(0)


def _stale(h: Host, pid: int, hostname: str) -> bool:
    """An entry we may overwrite: ours, or of a dead process on this host."""
    if h.pid == pid and h.hostname == hostname:
        return True
    return h.hostname == hostname and not pid_alive(h.pid)


def register(path: str | os.PathLike, address: str, pid: int | None = None, host_id: int | None = None,
             mount: str = "/gkfs", hostname: str | None = None) -> Host:
    """Write this member's entry ``<hosts>.d/<id>``; returns the Host written.

    The cluster record must exist. ``host_id`` None takes the smallest free
    slot (no entry, or a stale one); none free is an error (growing a
    cluster is explicit). An entry of a live process (or of another host)
    is never replaced.
    """
    p = Path(path)
    pid = os.getpid() if pid is None else pid
    hostname = hostname or socket.gethostname()
    with _locked(p):
        m = read_membership(p)
        if host_id is None:
            # An empty slot first; else one whose daemon died without leaving.
            host_id = next((i for i, h in enumerate(m.slots) if h is None), None)
            if host_id is None:
                host_id = next((i for i, h in enumerate(m.slots) if _stale(h, pid, hostname)), None)
            if host_id is None:
                raise HostsFileError(
                    f"all {m.members} member slots of the cluster in {p} are taken by running daemons; "
                    f"a cluster's size is fixed when it is created (start another cluster with its own "
                    f"--hosts-file, or stop a member to restart it)")
        if not 0 <= host_id < m.members:
            raise HostsFileError(f"id {host_id} is outside the {m.members}-member cluster of {p} "
                                 f"(ids 0..{m.members - 1}); a cluster's size is fixed when it is created")
        cur = m.slots[host_id]
        if cur is not None and not _stale(cur, pid, hostname):
            where = f"live pid {cur.pid}" if cur.hostname == hostname else cur.hostname
            raise HostsFileError(f"id {host_id} is already registered in {p} by {where} ({cur.address})")
        me = Host(host_id, address, pid, hostname, mount)
        text = MEMBER_HEADER + me.line()  # validates the fields
        d = members_dir(p)
        d.mkdir(exist_ok=True, mode=0o700)
        tmp = _write_temp(d, str(host_id), text)
        os.replace(tmp, d / str(host_id))
        return me


def unregister(path: str | os.PathLike, host_id: int, pid: int | None = None) -> bool:
    """Remove only our own entry (same id and pid); True if it was there.

    The cluster record stays: the membership is fixed, and a member that
    comes back takes its slot again.
    """
    p = Path(path)
    pid = os.getpid() if pid is None else pid
    with _locked(p):
        try:
            cur = _read_member_entry(p, host_id)
        except HostsFileError:
            return False
        if cur is None or cur.pid != pid:
            return False
        with contextlib.suppress(FileNotFoundError):
            member_file(p, host_id).unlink()
        return True


# --------------------------------------------------------------------------
# Shared file systems (launchers): one file per member, one writer per file
#
# On a parallel file system shared by the nodes, flock may not work across
# nodes and other nodes' writes appear late. The launcher writes the cluster
# record once (create_cluster) before starting the daemons; each launched
# daemon writes only its own entry ``<hosts>.d/<id>`` (temp name, fsync,
# rename: absent or complete, never half-written) and removes it when it
# stops. Readers merge record and entries (read_membership), so nobody ever
# edits a shared list.


def entries_dir(path: str | os.PathLike) -> Path:
    """Directory of the per-member entries of a hosts file: ``<hosts>.d``."""
    return members_dir(path)


def read_record_or_none(path: str | os.PathLike) -> ClusterRecord | None:
    try:
        return read_record(path)
    except HostsFileMissing:
        return None


def write_entry(path: str | os.PathLike, host: Host) -> Path:
    """Write this member's own entry (atomic rename, no lock); returns its path."""
    d = entries_dir(path)
    security.ensure_private_dir(d, what="gkfs hosts entries dir")
    final = d / str(host.id)
    tmp = d / f".{host.id}.{socket.gethostname()}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(MEMBER_HEADER + host.line())
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, final)
    return final


def read_entry(path: str | os.PathLike, host_id: int) -> Host | None:
    """The member's entry, or None while it is not there (or not yet visible)."""
    return _read_member_entry(Path(path), host_id)


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


def parse_hosts(text: str, path: str = "<hosts>") -> list[Host]:
    """The member lines written inline in a hosts file's text (not the entries)."""
    return parse_hosts_file(text, path)[1]


def write_hosts(path: str | os.PathLike, hosts: list[Host]) -> None:
    """The launcher's check once all members are up: the record is there and
    every member's entry names the same address. Nothing is rewritten: the
    record is written once, the entries by their members."""
    m = read_membership(path)
    for h in hosts:
        if not 0 <= h.id < m.members or m.slots[h.id] != h:
            raise HostsFileError(f"member {h.id} of {path} is not registered as {h.address}")
