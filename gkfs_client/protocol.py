"""The gkfs wire protocol: pure encode/decode of ZeroMQ multipart messages.

No sockets and no files here (h11 style): the daemon and every client feed
frames in and get frames out, so both sides share one definition and it can
be tested without a network. docs/protocol.md is the normative text; this
module is its Python implementation.

A request is ``[header, data0, data1, ...]``: ``header`` is a msgpack map
``{"v": version, "op": name, "id": request id, "args": map}`` and the data
frames are raw bytes (never msgpack'd, so a 64 MiB write is not re-encoded
and the daemon can pwrite the frame buffer as it arrived). A reply is
``[header, data...]`` with header ``{"v", "id", "status", "msg", "result"}``;
``status`` is 0 or a positive Linux errno number.
"""
from __future__ import annotations

import errno as _errno
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import msgpack

_unpackb = msgpack.unpackb
PROTOCOL_VERSION = 1
KiB = 1024
MiB = 1024 * KiB
DEFAULT_CHUNK_SIZE = 512 * KiB
# 64 MiB of payload per request plus room for the header: no frame, and no
# message in total, may be larger (the daemon answers EMSGSIZE).
DEFAULT_MAX_FRAME_SIZE = 64 * MiB + 64 * KiB
MAX_PATH_BYTES = 4096  # PATH_MAX, including nothing but the UTF-8 bytes
MAX_NAME_BYTES = 255  # NAME_MAX, per path component
MAX_HEADER_BYTES = 1 * MiB  # a header is small; anything bigger is abuse
DEFAULT_DIRENTS_LIMIT = 1024
MAX_DIRENTS_LIMIT = 65536
MAX_CHUNKS_PER_REQUEST = 4096
# Largest file size and offset (off_t): a write, truncate or chunk past it is
# EFBIG, never an overflow deeper down.
MAX_FILE_SIZE = 2**63 - 1
# A header is unpacked only when it is at most MAX_HEADER_BYTES and holds at
# most this many arrays and maps (a write_chunks of 4096 chunks needs 4098):
# a megabyte of empty containers would otherwise become a million Python
# objects (~60 bytes each).
MAX_HEADER_CONTAINERS = MAX_CHUNKS_PER_REQUEST + 64
MAX_MAP_ENTRIES = 64  # the widest map in the protocol (a stat record) has 10
# Frames in one request: a header and one data frame per chunk.
MAX_FRAMES = MAX_CHUNKS_PER_REQUEST + 1

# Reply status values are Linux errno numbers; the names used by the ops are
# collected here so docs/protocol.md and the C client can list the numbers.
ERRNOS = {
    name: getattr(_errno, name)
    for name in (
        "EPERM", "ENOENT", "EIO", "EAGAIN", "E2BIG", "EBUSY", "EEXIST", "EXDEV", "ENOTDIR",
        "EISDIR", "EINVAL", "EFBIG", "ENOSPC", "ENAMETOOLONG", "ENOSYS",
        "ENOTEMPTY", "ELOOP", "EOVERFLOW", "EPROTO", "EBADMSG", "EMSGSIZE", "ENOTSUP", "ESHUTDOWN",
    )
}


class ProtocolError(Exception):
    """Malformed or unacceptable message; carries the errno to answer with.

    ``req_id`` is the request id when it could be read (0 otherwise), so a
    daemon can still address its error reply.
    """

    def __init__(self, errno: int, message: str, req_id: int = 0):
        super().__init__(message)
        self.errno = errno
        self.message = message
        self.req_id = req_id

    def __str__(self) -> str:
        return f"[{_errno.errorcode.get(self.errno, self.errno)}] {self.message}"


class VersionMismatch(ProtocolError):
    """The peer speaks another protocol version (always EPROTO)."""

    def __init__(self, peer_version: Any, own_version: int, req_id: int = 0, *, we_are: str):
        other = "client" if we_are == "daemon" else "daemon"
        if we_are == "daemon":
            msg = f"client speaks protocol {peer_version!r}, daemon speaks {own_version}"
        else:
            msg = f"client speaks protocol {own_version}, daemon speaks {peer_version!r}"
        super().__init__(_errno.EPROTO, msg, req_id)
        self.peer_version = peer_version
        self.own_version = own_version
        self.other = other


# --------------------------------------------------------------------------
# Op table: argument names and types. Types are checked on decode so a
# handler never sees a wrong type. "path" is a str that must pass
# check_path; "key" is a data key (a str, non-empty, <= MAX_PATH_BYTES).
# "chunks" is a list of [index, offset_in_chunk, length] triples of uints.
# Unknown extra arguments are ignored (forward compatibility).


@dataclass(frozen=True)
class OpSpec:
    name: str
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    # write_chunks carries one data frame per chunk; every other op none.
    data_frames: bool = False


# get_dirents with ``stats``: each entry's stat record as a row of these
# fields, in this order (docs/protocol.md 4.3; a later version may append).
DIRENT_STAT_FIELDS = ("mode", "size", "nlink", "uid", "gid", "atime_ns", "mtime_ns", "ctime_ns", "data_key")

_OPS = [
    OpSpec("ping", {}, {"chunk_size": "uint"}),
    OpSpec("status", {}),
    OpSpec("statfs", {}),
    OpSpec("create", {"path": "path", "mode": "uint"}, {"exclusive": "bool", "uid": "uint", "gid": "uint",
                                                         "hold": "str"}),
    OpSpec("stat", {"path": "path"}, {"data_key": "key", "hold": "str", "peer": "bool"}),
    OpSpec("remove", {"path": "path"}, {"rmdir": "bool", "data_key": "key"}),
    OpSpec("update_size", {"path": "path", "offset": "uint", "count": "uint"}, {"append": "bool", "data_key": "key",
                                                                                     "cap": "str"}),
    OpSpec("truncate", {"path": "path", "size": "uint"}, {"data_key": "key", "cap": "str"}),
    # stats: also each entry's stat record (docs/protocol.md get_dirents)
    OpSpec("get_dirents", {"path": "path"}, {"start_after": "str", "limit": "uint", "stats": "bool"}),
    # size_path/size_offset/size_count: an update_size folded into the write
    # (sent only to size_path's metadata owner; applied after the chunks).
    OpSpec("write_chunks", {"data_key": "key", "chunk_size": "uint", "chunks": "chunks"},
           {"cap": "str", "size_path": "path", "size_offset": "uint", "size_count": "uint"}, data_frames=True),
    OpSpec("read_chunks", {"data_key": "key", "chunk_size": "uint", "chunks": "chunks"},
           {"file_size": "uint", "cap": "str", "size_path": "path"}),
    OpSpec("remove_chunks", {"data_key": "key"}, {"cap": "str"}),
    OpSpec("truncate_chunks", {"data_key": "key", "chunk_size": "uint", "size": "uint"}, {"cap": "str"}),
    OpSpec("fsync", {}, {"data_key": "key", "cap": "str"}),
    OpSpec("rename", {"old": "path", "new": "path"}),
    OpSpec("scan_chunks", {}, {"start_after": "str", "limit": "uint"}),
    OpSpec("remove_chunk_dir", {"name": "str"}),
    OpSpec("insert", {"path": "path", "record": "map"}, {"replace": "bool", "from": "path"}),
    OpSpec("symlink", {"path": "path", "target": "str"}, {"uid": "uint", "gid": "uint"}),
    OpSpec("readlink", {"path": "path"}),
    OpSpec("utimens", {"path": "path"}, {"atime_ns": "uint", "mtime_ns": "uint", "now": "bool"}),
    OpSpec("setattr", {"path": "path"}, {"mode": "uint", "uid": "uint", "gid": "uint"}),
    OpSpec("lock", {"data_key": "key", "owner": "str", "space": "str", "type": "uint", "start": "uint",
                    "len": "uint"}, {"pid": "uint", "test": "bool", "cap": "str"}),
    OpSpec("unlock_owner", {"owner": "str"}, {"data_key": "key"}),
    OpSpec("release", {"path": "path", "data_key": "key", "owner": "str"}, {"reclaim": "bool"}),
    OpSpec("fence", {"owner": "str", "on": "bool", "tree": "paths", "list": "paths"}),
]
# Ops whose handler also gets the requesting connection's identity (locks
# are bound to the connection that took them).
PEER_OPS = frozenset({"lock", "create", "stat", "fence"})
OPS: dict[str, OpSpec] = {spec.name: spec for spec in _OPS}


# --------------------------------------------------------------------------
# Paths


def _plainly_canonical(path: str) -> bool:
    """The common case of check_path and normalize_path, decided without
    splitting: absolute, no empty, '.' or '..' component, no trailing '/',
    no NUL, and at most MAX_NAME_BYTES UTF-8 bytes in all, so no component
    can be too long. False means "take the full walk", not "invalid"."""
    if (path[:1] == "/" and path[-1:] != "/" and "//" not in path and "/." not in path
            and "\x00" not in path and len(path) <= MAX_NAME_BYTES):
        try:
            return len(path.encode("utf-8")) <= MAX_NAME_BYTES
        except UnicodeEncodeError:
            return False
    return False


def check_path(path: Any) -> str:
    """Accept only canonical absolute paths; raise ProtocolError otherwise.

    Canonical: starts with '/', no empty, '.' or '..' component, no trailing
    '/' (except the root itself), no NUL, at most MAX_PATH_BYTES UTF-8 bytes
    and MAX_NAME_BYTES per component. The daemon never normalises: a client
    that sends '..' is rejected (EINVAL) rather than guessed at, so nothing
    can address a name outside the file system's root.
    """
    if not isinstance(path, str):
        raise ProtocolError(_errno.EINVAL, f"path must be a string, got {type(path).__name__}")
    if _plainly_canonical(path):
        return path
    if "\x00" in path:
        raise ProtocolError(_errno.EINVAL, f"path contains NUL: {path!r}")
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(_errno.EINVAL, f"path is not valid UTF-8: {path!r}") from None
    if len(raw) > MAX_PATH_BYTES:
        raise ProtocolError(_errno.ENAMETOOLONG, f"path longer than {MAX_PATH_BYTES} bytes")
    if not path.startswith("/"):
        raise ProtocolError(_errno.EINVAL, f"path must be absolute: {path!r}")
    if path == "/":
        return path
    if path.endswith("/"):
        raise ProtocolError(_errno.EINVAL, f"path has a trailing '/': {path!r}")
    for comp in path[1:].split("/"):
        if comp == "":
            raise ProtocolError(_errno.EINVAL, f"path has an empty component: {path!r}")
        if comp in (".", ".."):
            raise ProtocolError(_errno.EINVAL, f"path has a '{comp}' component (send normalised paths): {path!r}")
        if len(comp.encode("utf-8")) > MAX_NAME_BYTES:
            raise ProtocolError(_errno.ENAMETOOLONG, f"path component longer than {MAX_NAME_BYTES} bytes")
    return path


def normalize_path(path: str, cwd: str = "/") -> str:
    """Client side: make ``path`` canonical (relative to ``cwd``).

    '..' is resolved lexically and may not climb above '/', which raises
    EINVAL (a gkfs path that escapes the root is an error, not the root).
    """
    if _plainly_canonical(path):
        return path
    if "\x00" in path:
        raise ProtocolError(_errno.EINVAL, f"path contains NUL: {path!r}")
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise ProtocolError(_errno.EINVAL, f"path escapes the root: {path!r}")
            parts.pop()
        else:
            parts.append(comp)
    return check_path("/" + "/".join(parts))


def names_directory(path: str) -> bool:
    """True when the spelling of ``path`` requires a directory: a trailing
    '/' or a last component '.' or '..' ("f/", "f/."), which POSIX resolves
    as a directory (ENOTDIR for a file).  normalize_path drops that, so
    callers ask here before normalising."""
    last = path.rstrip("/").rpartition("/")[2] if path.strip("/") else ""
    return path.endswith("/") or last in (".", "..")


def parent_and_name(path: str) -> tuple[str, str]:
    """Split a canonical path: '/a/b' -> ('/a', 'b'); '/a' -> ('/', 'a')."""
    head, _, name = path.rpartition("/")
    return (head or "/"), name


# --------------------------------------------------------------------------
# Messages


@dataclass(slots=True)
class Request:
    op: str
    args: dict[str, Any]
    req_id: int
    data: list[Any] = field(default_factory=list)  # raw buffers, untouched
    version: int = PROTOCOL_VERSION


@dataclass(slots=True)
class Reply:
    req_id: int
    status: int
    message: str
    result: dict[str, Any]
    data: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 0

    def raise_for_status(self) -> "Reply":
        """Raise OSError(status, message) (FileNotFoundError for ENOENT...)."""
        if self.status:
            raise OSError(self.status, self.message)
        return self


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _frame_len(frame: Any) -> int:
    if isinstance(frame, memoryview):
        return frame.nbytes
    return len(frame)


def _short(value: Any, limit: int = 80) -> str:
    """repr() for error messages, cut: a hostile value may be megabytes."""
    text = repr(value) if not isinstance(value, (list, dict)) else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


class _Budget:
    """Counts the arrays and maps msgpack builds; past the budget, stops it."""

    def __init__(self, limit: int):
        self.left = limit

    def __call__(self, obj: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise ProtocolError(_errno.EBADMSG, f"header holds more than {MAX_HEADER_CONTAINERS} arrays/maps")
        return obj


def unpack_bounded(buf: Any, limit: int = MAX_HEADER_BYTES) -> Any:
    """Unpack one msgpack object of at most ``limit`` bytes with bounded work
    and memory (size checked before anything is unpacked, container count,
    lengths and nesting limited); ProtocolError for anything else."""
    n = _frame_len(buf)
    if n > limit:
        raise ProtocolError(_errno.EMSGSIZE, f"header frame larger than {limit} bytes")
    try:
        if n <= MAX_HEADER_CONTAINERS:
            # Every array or map takes at least one byte: a frame this small
            # cannot exceed the container budget, so no per-container hook
            # (the common case: every header but a big chunk list).
            return _unpackb(buf, raw=False, strict_map_key=False, use_list=True, max_str_len=limit,
                            max_bin_len=limit, max_array_len=MAX_CHUNKS_PER_REQUEST,
                            max_map_len=MAX_MAP_ENTRIES, max_ext_len=0)
        budget = _Budget(MAX_HEADER_CONTAINERS)
        return _unpackb(buf, raw=False, strict_map_key=False, use_list=True, list_hook=budget,
                        object_hook=budget, max_str_len=limit, max_bin_len=limit,
                        max_array_len=MAX_CHUNKS_PER_REQUEST, max_map_len=MAX_MAP_ENTRIES,
                        max_ext_len=0)
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many types; all mean "malformed"
        raise ProtocolError(_errno.EBADMSG,
                            f"header is not valid msgpack ({type(exc).__name__}: {_short(str(exc), 120)})") from None


def peek_header(buf: Any) -> tuple[str | None, int]:
    """(op, id) of a request header without building it: for the daemon's
    broker, which only classifies and must never fail or stall. Values of
    the wrong type come back as None / 0 (the worker answers properly)."""
    if _frame_len(buf) > MAX_HEADER_BYTES:
        return None, 0
    op, req_id = None, 0
    try:
        up = msgpack.Unpacker(raw=False, max_buffer_size=MAX_HEADER_BYTES, max_str_len=MAX_HEADER_BYTES,
                              max_bin_len=MAX_HEADER_BYTES, max_array_len=MAX_CHUNKS_PER_REQUEST,
                              max_map_len=MAX_MAP_ENTRIES, max_ext_len=0)
        up.feed(buf)
        for _ in range(min(up.read_map_header(), MAX_MAP_ENTRIES)):
            key = up.unpack() if _next_is_scalar(up) else up.skip()
            if key == "op" and _next_is_scalar(up):
                value = up.unpack()
                op = value if isinstance(value, str) and len(value) <= 64 else None
            elif key == "id" and _next_is_scalar(up):
                value = up.unpack()
                req_id = value if _uint(value) else 0
            else:
                up.skip()
    except Exception:
        pass
    return op, req_id


def _next_is_scalar(up: "msgpack.Unpacker") -> bool:
    """Whether the next object is not an array or map (without reading it)."""
    try:
        up.read_array_header()
    except ValueError:  # not an array: nothing consumed
        pass
    else:
        raise ValueError("array where a scalar belongs")
    try:
        up.read_map_header()
    except ValueError:
        return True
    raise ValueError("map where a scalar belongs")


def _unpack_header(frame: Any) -> Any:
    buf = frame.buffer if hasattr(frame, "buffer") else frame  # zmq.Frame
    return unpack_bounded(buf)


def encode_request(op: str, args: dict[str, Any] | None = None, data: Iterable[Any] = (),
                   *, req_id: int, version: int = PROTOCOL_VERSION, pack=_pack) -> list[Any]:
    """Frames for one request. ``data`` buffers are passed through as is.
    ``pack``: the msgpack encoder (a caller's own ``request_packer()``
    saves building a Packer per request)."""
    header = {"v": version, "op": op, "id": req_id, "args": args or {}}
    return [pack(header), *data]


def request_packer():
    """The encoder ``_pack`` is, as one reusable Packer's ``pack``: for one
    thread at a time (as the socket it feeds), since a Packer has a buffer."""
    return msgpack.Packer(use_bin_type=True).pack


def encode_reply(req_id: int, result: dict[str, Any] | None = None, data: Iterable[Any] = (),
                 *, status: int = 0, message: str = "") -> list[Any]:
    header = {"v": PROTOCOL_VERSION, "id": req_id, "status": status, "msg": message,
              "result": result or {}}
    return [_reply_packer().pack(header), *data]


_REPLY_PACKERS = threading.local()


def _reply_packer() -> msgpack.Packer:
    """This thread's Packer for replies (the same bytes as _pack; a packer
    kept costs half of msgpack.packb, which builds one per call)."""
    try:
        return _REPLY_PACKERS.packer
    except AttributeError:
        packer = _REPLY_PACKERS.packer = msgpack.Packer(use_bin_type=True)
        return packer


def encode_error(req_id: int, errno: int, message: str) -> list[Any]:
    return encode_reply(req_id, status=errno, message=message)


def check_frame_sizes(frames: Sequence[Any], max_frame_size: int) -> None:
    """EMSGSIZE when a frame, or the message in total, exceeds the limit."""
    total = 0
    for f in frames:
        n = _frame_len(f)
        if n > max_frame_size:
            raise ProtocolError(_errno.EMSGSIZE,
                                f"frame of {n} bytes exceeds max_frame_size {max_frame_size}")
        total += n
    if total > max_frame_size:
        raise ProtocolError(_errno.EMSGSIZE,
                            f"message of {total} bytes exceeds max_frame_size {max_frame_size}")


def _uint(v: Any) -> bool:  # noqa: E302
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64


def _bad_arg(op: str, name: str, what: str) -> ProtocolError:
    return ProtocolError(_errno.EINVAL, f"op '{op}': argument '{name}' {what}")


def _check_arg(op: str, name: str, kind: str, value: Any) -> None:
    # (errors come from _bad_arg: a nested function here would be made
    # again for every argument of every request)
    if kind == "path":
        try:
            check_path(value)
        except ProtocolError as exc:
            raise ProtocolError(exc.errno, f"op '{op}': argument '{name}': {exc.message}") from None
    elif kind == "key":
        if not isinstance(value, str) or not value or "\x00" in value or len(value.encode()) > MAX_PATH_BYTES:
            raise _bad_arg(op, name, "must be a non-empty string without NUL")
    elif kind == "str":
        if not isinstance(value, str):
            raise _bad_arg(op, name, "must be a string")
    elif kind == "uint":
        if not _uint(value):
            raise _bad_arg(op, name, "must be an unsigned integer")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _bad_arg(op, name, "must be a boolean")
    elif kind == "paths":
        if not isinstance(value, list) or len(value) > 16:
            raise _bad_arg(op, name, "must be a list of at most 16 paths")
        for p in value:
            try:
                check_path(p)
            except ProtocolError as exc:
                raise ProtocolError(exc.errno, f"op '{op}': argument '{name}': {exc.message}") from None
    elif kind == "map":
        if not isinstance(value, dict):
            raise _bad_arg(op, name, "must be a map")
    elif kind == "chunks":
        if not isinstance(value, list) or len(value) > MAX_CHUNKS_PER_REQUEST:
            raise _bad_arg(op, name, f"must be a list of at most {MAX_CHUNKS_PER_REQUEST} [index, offset, length]")
        for item in value:
            if not (isinstance(item, list) and len(item) == 3 and all(_uint(x) for x in item)):
                raise _bad_arg(op, name, "items must be [index, offset, length] unsigned integers")
    else:  # pragma: no cover - table error
        raise AssertionError(kind)


def validate_chunks(op: str, chunks: list[list[int]], chunk_size: int) -> None:
    """Each [index, offset, length] must lie inside one chunk, and inside the
    largest file (EFBIG past MAX_FILE_SIZE)."""
    for index, offset, length in chunks:
        if offset + length > chunk_size:
            raise ProtocolError(_errno.EINVAL,
                                f"op '{op}': chunk {index} range {offset}+{length} exceeds chunk size {chunk_size}")
        if index * chunk_size + offset + length > MAX_FILE_SIZE + 1:
            raise ProtocolError(_errno.EFBIG, f"op '{op}': chunk {index} lies past the largest file size "
                                              f"({MAX_FILE_SIZE} bytes)")


def check_file_size(what: str, size: int) -> None:
    """EFBIG for a size or end offset past MAX_FILE_SIZE."""
    if size > MAX_FILE_SIZE:
        raise OSError(_errno.EFBIG, f"{what} {size} is past the largest file size ({MAX_FILE_SIZE} bytes)")


def decode_request(frames: Sequence[Any], *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> Request:
    """Parse and validate a request (frames without any routing envelope).

    Raises ProtocolError (with ``req_id`` when it was readable) for every
    defect, VersionMismatch for another protocol version.
    """
    if not frames:
        raise ProtocolError(_errno.EBADMSG, "empty message")
    header = _unpack_header(frames[0])
    if not isinstance(header, dict):
        raise ProtocolError(_errno.EBADMSG, "header must be a msgpack map")
    req_id = header.get("id")
    if not _uint(req_id):
        raise ProtocolError(_errno.EBADMSG, "header 'id' must be an unsigned integer")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(version, PROTOCOL_VERSION, req_id, we_are="daemon")
    if len(frames) != 1 or max_frame_size < MAX_HEADER_BYTES:
        # (a lone header frame passed unpack_bounded: at most
        # MAX_HEADER_BYTES, so within any max_frame_size at least that big)
        check_frame_sizes_with_id(frames, max_frame_size, req_id)
    op = header.get("op")
    if not isinstance(op, str):
        raise ProtocolError(_errno.EBADMSG, "header 'op' must be a string", req_id)
    spec = OPS.get(op)
    if spec is None:
        raise ProtocolError(_errno.ENOSYS, f"unknown op {op!r}", req_id)
    args = header.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError(_errno.EBADMSG, "header 'args' must be a map", req_id)
    data = list(frames[1:])
    try:
        for name, kind in spec.required.items():
            if name not in args:
                raise ProtocolError(_errno.EINVAL, f"op '{op}': missing argument '{name}'")
            _check_arg(op, name, kind, args[name])
        for name, kind in spec.optional.items():
            if name in args and args[name] is not None:
                _check_arg(op, name, kind, args[name])
        if spec.data_frames:
            chunks = args["chunks"]
            if len(data) != len(chunks):
                raise ProtocolError(_errno.EINVAL,
                                    f"op '{op}': {len(chunks)} chunks described but {len(data)} data frames sent")
            for (index, _off, length), frame in zip(chunks, data):
                if _frame_len(frame) != length:
                    raise ProtocolError(_errno.EINVAL,
                                        f"op '{op}': chunk {index} says {length} bytes, frame has {_frame_len(frame)}")
        elif data:
            raise ProtocolError(_errno.EINVAL, f"op '{op}' takes no data frames, got {len(data)}")
    except ProtocolError as exc:
        exc.req_id = req_id
        raise
    return Request(op, args, req_id, data, version)


def check_frame_sizes_with_id(frames: Sequence[Any], max_frame_size: int, req_id: int) -> None:
    try:
        check_frame_sizes(frames, max_frame_size)
    except ProtocolError as exc:
        exc.req_id = req_id
        raise


def decode_reply(frames: Sequence[Any]) -> Reply:
    """Parse a reply; VersionMismatch if the daemon speaks another version."""
    if not frames:
        raise ProtocolError(_errno.EBADMSG, "empty reply")
    header = unpack_bounded(frames[0])
    if type(header) is not dict:
        raise ProtocolError(_errno.EBADMSG, "reply header must be a msgpack map")
    get = header.get
    req_id = get("id")
    if type(req_id) is not int or not 0 <= req_id < 2**64:
        raise ProtocolError(_errno.EBADMSG, "reply 'id' must be an unsigned integer")
    if get("v") != PROTOCOL_VERSION:
        raise VersionMismatch(get("v"), PROTOCOL_VERSION, req_id, we_are="client")
    status = get("status")
    if type(status) is not int or not 0 <= status < 2**64:
        raise ProtocolError(_errno.EBADMSG, "reply 'status' must be an unsigned integer", req_id)
    message = get("msg", "")
    result = get("result") or {}
    if type(message) is not str or type(result) is not dict:
        raise ProtocolError(_errno.EBADMSG, "reply 'msg' must be a string and 'result' a map", req_id)
    data = frames[1:]
    return Reply(req_id, status, message, result, data if type(data) is list else list(data))


def errno_name(number: int) -> str:
    return _errno.errorcode.get(number, str(number))


def strerror(number: int) -> str:
    return os.strerror(number)
