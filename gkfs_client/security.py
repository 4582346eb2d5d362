"""Cluster security: safe runtime files, CURVE keys, the client key registry.

A cluster's keys are created with the cluster and live beside its hosts
file, in the owner-only directory ``<hosts file>.keys/``:

    server.key   the daemons' CURVE key pair (all daemons of a cluster share it)
    cap.key      32 random bytes: the daemons' secret for data capabilities
    client.key   the owner's client key: the daemons' public key + a client key pair
    clients      the registry: one line per client key the owner issued,
                 ``<public key z85> <uid> <gid> <groups,|-> <name>``

Daemons accept a connection only over CURVE and only from a client whose
public key is in ``clients`` (checked by the ZAP handler in the daemon, which
re-reads the registry when it changes, so a revoked key is refused on the
next connection without a restart). The registry line says which uid/gid
the key stands for; handlers get that identity from the transport, never
from a request field.

``LIBGKFS_SECURITY=off`` (or ``gkfs-daemon --security off``) turns all of
this off for a trusted network: plain TCP, anybody who reaches a daemon's
port acts as the cluster's owner.
"""
from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat as st
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import zmq
from zmq.utils import z85

ENV_SECURITY = "LIBGKFS_SECURITY"
ENV_KEY_FILE = "LIBGKFS_KEY_FILE"
MODES = ("curve", "off")
KEYS_SUFFIX = ".keys"
REGISTRY = "clients"
SERVER_KEY = "server.key"
CAP_KEY = "cap.key"
CLIENT_KEY = "client.key"


class SecurityError(PermissionError):
    """An unsafe file or directory, a missing or malformed key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def security_mode(explicit: str | None = None) -> str:
    """'curve' (the default) or 'off' (explicit, from a flag or $LIBGKFS_SECURITY)."""
    mode = explicit or os.environ.get(ENV_SECURITY) or "curve"
    if mode not in MODES:
        raise SecurityError(f"security mode must be one of {', '.join(MODES)}, got {mode!r} "
                            f"(from {'--security' if explicit else ENV_SECURITY})")
    return mode


# --------------------------------------------------------------- safe paths

def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def check_safe(path: Path, *, what: str, private: bool = False, st_result: os.stat_result | None = None) -> None:
    """Refuse a file or directory another user could have planted or can change.

    It must be owned by us (or root) and writable by nobody else; ``private``
    also forbids any access by group and others (keys).
    """
    s = st_result or os.stat(path)
    if not _trusted_owner(s.st_uid):
        try:
            owner = pwd.getpwuid(s.st_uid).pw_name
        except KeyError:
            owner = str(s.st_uid)
        raise SecurityError(f"{what} {path} is owned by {owner}, not by you (uid {os.geteuid()}): another user "
                            f"may have created it to capture your data; remove it (or use another path, e.g. "
                            f"LIBGKFS_HOSTS_FILE / XDG_RUNTIME_DIR) and start the cluster again")
    bad = 0o077 if private else 0o022
    if s.st_mode & bad:
        fix = "chmod go-rwx" if private else "chmod go-w"
        raise SecurityError(f"{what} {path} has mode {st.S_IMODE(s.st_mode):04o}: "
                            f"{'readable or writable' if private else 'writable'} by other users; "
                            f"fix with '{fix} {path}'")


def ensure_private_dir(path: Path, *, what: str = "gkfs runtime dir") -> Path:
    """Create ``path`` owner-only (0700) or check an existing one is safe."""
    path = Path(path)
    try:
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is cut by the umask only, never widened
    except FileExistsError:
        s = os.lstat(path)
        if st.S_ISLNK(s.st_mode):
            s = os.stat(path)
        if not st.S_ISDIR(s.st_mode):
            raise SecurityError(f"{what} {path} is not a directory") from None
        check_safe(path, what=what, st_result=s)
    return path


# ------------------------------------------------------------------- keys

def keys_dir(hosts_path: str | os.PathLike) -> Path:
    p = Path(hosts_path)
    return p.with_name(p.name + KEYS_SUFFIX)


def client_key_path(hosts_path: str | os.PathLike) -> Path:
    env = os.environ.get(ENV_KEY_FILE)
    return Path(env) if env else keys_dir(hosts_path) / CLIENT_KEY


@dataclass(frozen=True)
class ClientKey:
    server_public: bytes  # z85, 40 bytes
    public: bytes
    secret: bytes


@dataclass(frozen=True)
class ServerKey:
    public: bytes
    secret: bytes
    cap_secret: bytes


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: the uid/gid its client key stands for."""
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups

    def user_id(self) -> str:
        """The ZAP User-Id string the transport hands to the handlers."""
        return f"{self.uid}:{self.gid}:{','.join(str(g) for g in sorted(self.groups)) or '-'}"

    @classmethod
    def from_user_id(cls, text: str) -> "Identity":
        uid, gid, groups = text.split(":")
        return cls(int(uid), int(gid), frozenset() if groups == "-" else frozenset(int(g) for g in groups.split(",")))

    @classmethod
    def of_process(cls) -> "Identity":
        return cls(os.geteuid(), os.getegid(), frozenset(os.getgroups()))


def _write_private(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _client_key_text(server_public: bytes, public: bytes, secret: bytes, name: str) -> str:
    return (f"# gkfs client key v1 for {name}: keep it owner-only (chmod 600)\n"
            f"server-public {server_public.decode()}\npublic {public.decode()}\nsecret {secret.decode()}\n")


def _registry_line(public: bytes, ident: Identity, name: str) -> str:
    groups = ",".join(str(g) for g in sorted(ident.groups)) or "-"
    return f"{public.decode()} {ident.uid} {ident.gid} {groups} {name}\n"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def ensure_cluster_keys(hosts_path: str | os.PathLike) -> Path:
    """The cluster's keys directory, created (owner-only) if it does not exist yet.

    Created in a temporary directory and renamed into place, so daemons
    starting at once agree on one set of keys.
    """
    kd = keys_dir(hosts_path)
    ensure_private_dir(kd.parent)
    if kd.exists():
        check_keys_dir(kd)
        return kd
    tmp = Path(tempfile.mkdtemp(prefix=kd.name + ".", dir=kd.parent))
    try:
        spub, ssec = zmq.curve_keypair()
        cpub, csec = zmq.curve_keypair()
        _write_private(tmp / SERVER_KEY, f"# gkfs daemon key v1\npublic {spub.decode()}\nsecret {ssec.decode()}\n")
        _write_private(tmp / CAP_KEY, os.urandom(32).hex() + "\n")
        owner = Identity.of_process()
        name = _user_name(owner.uid)
        _write_private(tmp / CLIENT_KEY, _client_key_text(spub, cpub, csec, name))
        _write_private(tmp / REGISTRY, "# gkfs client keys: <public> <uid> <gid> <groups> <name>\n"
                       + _registry_line(cpub, owner, name))
        try:
            os.rename(tmp, kd)
        except OSError:
            if not kd.is_dir():
                raise
    finally:
        if tmp.exists():
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
    check_keys_dir(kd)
    return kd


def check_keys_dir(kd: Path) -> None:
    check_safe(kd, what="gkfs keys dir", private=True)


def _fields(path: Path, what: str) -> dict[str, str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecurityError(f"{what} not found: {path}") from None
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        check_safe(path, what=what, private=True, st_result=os.fstat(f.fileno()))
        text = f.read()
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            k, _, v = line.partition(" ")
            out[k] = v.strip()
    return out


def _z85_key(value: str | None, path: Path, field: str) -> bytes:
    if not value or len(value) != 40:
        raise SecurityError(f"{path}: missing or malformed '{field}' (a 40-character Z85 key)")
    try:
        z85.decode(value.encode())
    except Exception:
        raise SecurityError(f"{path}: '{field}' is not a Z85 key") from None
    return value.encode()


def load_client_key(path: str | os.PathLike) -> ClientKey:
    p = Path(path)
    f = _fields(p, "gkfs client key")
    return ClientKey(_z85_key(f.get("server-public"), p, "server-public"), _z85_key(f.get("public"), p, "public"),
                     _z85_key(f.get("secret"), p, "secret"))


def load_server_key(hosts_path: str | os.PathLike) -> ServerKey:
    kd = keys_dir(hosts_path)
    check_keys_dir(kd)
    f = _fields(kd / SERVER_KEY, "gkfs daemon key")
    cap = _fields(kd / CAP_KEY, "gkfs capability key")
    raw = next(iter(cap), "")
    try:
        cap_secret = bytes.fromhex(raw)
    except ValueError:
        cap_secret = b""
    if len(cap_secret) != 32:
        raise SecurityError(f"{kd / CAP_KEY}: malformed (64 hex digits expected)")
    return ServerKey(_z85_key(f.get("public"), kd, "public"), _z85_key(f.get("secret"), kd, "secret"), cap_secret)


def client_credentials(hosts_path: str | os.PathLike, mode: str | None = None) -> ClientKey | None:
    """The key a client connects with (None when security is off)."""
    if security_mode(mode) == "off":
        return None
    path = client_key_path(hosts_path)
    try:
        return load_client_key(path)
    except SecurityError as exc:
        if not path.exists():
            raise SecurityError(f"no gkfs client key at {path}: a cluster's keys are created with it, beside its "
                                f"hosts file; a user of someone else's cluster needs a key issued by its owner "
                                f"('gkfs-ctl key issue USER') in {ENV_KEY_FILE}; only on a trusted network set "
                                f"{ENV_SECURITY}=off on every daemon and client") from None
        raise exc


def is_owner_key(hosts_path: str | os.PathLike, key: ClientKey | None) -> bool:
    """Whether ``key`` makes a client the cluster's owner: security off (every
    client acts as the owner), or the owner's own client key (by its public
    key, wherever the file was read from). A key issued to another user is
    not, even in a process of the owner's uid: that client must keep that
    user's rights, so it may not use the local stream (docs/protocol.md
    1.1), whose requests run as the owner."""
    if key is None:
        return True
    try:
        return load_client_key(keys_dir(hosts_path) / CLIENT_KEY).public == key.public
    except (OSError, SecurityError):  # not ours to read: not the owner
        return False


# --------------------------------------------------------------- registry

@dataclass(frozen=True)
class RegistryEntry:
    public: bytes
    identity: Identity
    name: str


def read_registry(kd: Path) -> list[RegistryEntry]:
    path = kd / REGISTRY
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        if len(f) != 5:
            raise SecurityError(f"{path}:{lineno}: expected '<public> <uid> <gid> <groups> <name>'")
        groups = frozenset() if f[3] == "-" else frozenset(int(g) for g in f[3].split(","))
        out.append(RegistryEntry(f[0].encode(), Identity(int(f[1]), int(f[2]), groups), f[4]))
    return out


@contextlib.contextmanager
def _registry_locked(kd: Path) -> Iterator[None]:
    import fcntl
    fd = os.open(kd / (REGISTRY + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _rewrite_registry(kd: Path, entries: list[RegistryEntry]) -> None:
    tmp = kd / (REGISTRY + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_private(tmp, "# gkfs client keys: <public> <uid> <gid> <groups> <name>\n"
                   + "".join(_registry_line(e.public, e.identity, e.name) for e in entries))
    os.replace(tmp, kd / REGISTRY)


def identity_of_user(user: str) -> tuple[Identity, str]:
    """A local user name or uid -> (identity with its groups, name)."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise SecurityError(f"no such local user: {user}") from None
    groups = frozenset(os.getgrouplist(pw.pw_name, pw.pw_gid)) - {pw.pw_gid}
    return Identity(pw.pw_uid, pw.pw_gid, groups), pw.pw_name


def issue_key(hosts_path: str | os.PathLike, user: str, out: str | os.PathLike, name: str | None = None) -> RegistryEntry:
    """Issue a client key standing for ``user``; write it to ``out`` (0600, owned by that user)."""
    kd = keys_dir(hosts_path)
    server = load_server_key(hosts_path)
    ident, uname = identity_of_user(user)
    name = name or uname
    if any(c.isspace() for c in name) or not name:
        raise SecurityError(f"key name may not be empty or contain whitespace: {name!r}")
    pub, sec = zmq.curve_keypair()
    with _registry_locked(kd):
        entries = read_registry(kd)
        if any(e.name == name for e in entries):
            raise SecurityError(f"a key named {name!r} is already issued; revoke it first or pass --name")
        outp = Path(out)
        _write_private(outp, _client_key_text(server.public, pub, sec, name))
        if os.geteuid() == 0:
            os.chown(outp, ident.uid, ident.gid)
        entry = RegistryEntry(pub, ident, name)
        _rewrite_registry(kd, entries + [entry])
    return entry


def revoke_key(hosts_path: str | os.PathLike, name: str) -> int:
    """Remove every key named ``name`` (or with that public key); returns how many."""
    kd = keys_dir(hosts_path)
    check_keys_dir(kd)
    with _registry_locked(kd):
        entries = read_registry(kd)
        keep = [e for e in entries if e.name != name and e.public.decode() != name]
        if len(keep) != len(entries):
            _rewrite_registry(kd, keep)
    return len(entries) - len(keep)


def list_keys(hosts_path: str | os.PathLike) -> list[RegistryEntry]:
    kd = keys_dir(hosts_path)
    check_keys_dir(kd)
    return read_registry(kd)


# ------------------------------------------------------------ sockets

def apply_client(sock: zmq.Socket, key: ClientKey | None) -> None:
    if key is None:
        return
    sock.curve_serverkey = key.server_public
    sock.curve_publickey = key.public
    sock.curve_secretkey = key.secret


def apply_server(sock: zmq.Socket, key: ServerKey) -> None:
    sock.curve_server = True
    sock.curve_publickey = key.public
    sock.curve_secretkey = key.secret
    sock.zap_domain = b"gkfs"
