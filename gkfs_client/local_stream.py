"""The local stream: gkfs messages over a UNIX stream socket (docs/protocol.md 1.1).

A client on the same host and in the same network namespace as a daemon
talks to it over an abstract UNIX stream socket instead of ZeroMQ over TCP.
ZeroMQ moves every message through an I/O thread on each side (four thread
hand-offs per round trip); a stream socket is read and written by the
threads that use it. Measured on the 2-core VM with a Python echo: 16-20k
round trips/s for one client against 10-13k over ZeroMQ, and 110k/s against
31-37k for four clients together.

This module is what client and daemon share: the socket's name, the
framing (encode, and an incremental decoder that enforces the limits), and
the two socket steps both ends take alike (the peer's credentials, a
non-blocking write of a message's buffers). Connecting, waiting and
routing live in the transports.

Framing: a message is ``<u32 n> <u32 len_0> ... <u32 len_{n-1}>`` (little
endian) followed by the n frames' bytes, the same frames a ZeroMQ message
would have (header first, raw data after). 1 <= n <= MAX_FRAMES, each
len_i <= the frame limit, their sum <= the message limit; a stream that
breaks a limit is not resynchronised: the reader closes it.
"""
from __future__ import annotations

import socket
import struct
from typing import Any, Sequence

from gkfs_client import distribution, protocol

_U32 = struct.Struct("<I")
_ONE_FRAME = struct.Struct("<II")
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# Buffers one sendmsg(2) takes (Linux's UIO_MAXIOV): a reply of 4096 chunks
# is 4097 frames and a prefix (EMSGSIZE if passed in one call).
IOV_MAX = 1024
_unpack_u32 = _U32.unpack_from
# The abstract namespace (a leading NUL): scoped to the network namespace, so
# a client in another namespace (another "node" in the multi-node tests)
# cannot reach the socket and goes over TCP, through the link a test cuts;
# and nothing is left on a file system when the daemon dies.
NAME_PREFIX = b"\0gkfs-local/"
# Messages whose frames fit here are received into the decoder's reusable
# buffer and copied out (a header: ~100 bytes); larger ones get a buffer of
# their own, received into once and handed on without another copy.
SMALL_BUFFER = 64 * 1024
MAX_PREFIX = 4 + 4 * protocol.MAX_FRAMES
assert MAX_PREFIX < SMALL_BUFFER


class FramingError(Exception):
    """A stream that breaks the framing or its limits: close it."""


def local_name(cluster_uuid: str, member_id: int, address: str) -> bytes:
    """The abstract socket name of one member's local stream listener:
    ``"\\0gkfs-local/<cluster uuid>/<16 hex digits>"``, the digits being
    FNV-1a 64 (gkfs_client.distribution, which the C client has too) of
    ``"<member id>\\n<address>"``.

    Derived from what the hosts file says about the member, so a client
    needs nothing else to find it, and a member restarted at another address
    has another name. Fixed length (65 bytes; sun_path holds 108) whatever
    the address. The hash only has to keep one cluster's members apart (the
    uuid keeps clusters apart); who may answer on a name is settled by the
    listener's credentials, never by the name."""
    h = distribution.fnv1a64(f"{member_id}\n{address}".encode())
    return NAME_PREFIX + f"{cluster_uuid}/{h:016x}".encode()


def encode_lone(frame: bytes) -> bytes:
    """A message of one small frame (a header: most requests and replies)
    as one buffer, to write with one system call."""
    return _ONE_FRAME.pack(1, len(frame)) + frame


def encode(frames: Sequence[Any]) -> list[Any]:
    """The buffers to write, in order, for one message of ``frames``
    (bytes-like). A lone frame (most requests and replies) is one buffer."""
    n = len(frames)
    if n == 1:
        f = frames[0]
        return [encode_lone(bytes(f))] if len(f) <= 4096 else [_ONE_FRAME.pack(1, len(f)), f]
    if n == 0:
        raise ValueError("a message has at least one frame")
    lengths = [memoryview(f).nbytes for f in frames]
    return [struct.pack(f"<I{n}I", n, *lengths), *frames]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel saw it
    at connect (SO_PEERCRED): who may use a stream is settled by this."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


def send_some(sock: socket.socket, buffers: Sequence[Any], flags: int) -> int:
    """Bytes of ``buffers`` (in order) the non-blocking ``sock`` takes now:
    IOV_MAX buffers per sendmsg, on while each batch is taken whole.
    BlockingIOError (or InterruptedError) only when it takes none."""
    if len(buffers) <= IOV_MAX:
        return sock.sendmsg(buffers, (), flags)
    sent = 0
    for i in range(0, len(buffers), IOV_MAX):
        batch = buffers[i:i + IOV_MAX]
        try:
            n = sock.sendmsg(batch, (), flags)
        except (BlockingIOError, InterruptedError):
            if sent:
                return sent
            raise
        sent += n
        if n < sum(memoryview(b).nbytes for b in batch):
            break
    return sent


def unsent(buffers: Sequence[Any], n: int) -> list[memoryview]:
    """What is left of ``buffers`` once their first ``n`` bytes are written:
    byte views, the first maybe a tail of its buffer."""
    rest: list[memoryview] = []
    for b in buffers:
        mv = memoryview(b).cast("B")
        if n >= len(mv):
            n -= len(mv)
            continue
        rest.append(mv[n:])
        n = 0
    return rest


class Decoder:
    """Incremental decoder for one direction of one stream.

    Use: ``view = d.buffer()``, ``k = sock.recv_into(view)``, then
    ``d.received(k)`` returns the messages completed by those bytes (each a
    list of frames: ``bytes`` for a message of up to SMALL_BUFFER, else
    memoryviews of that message's own buffer). Raises FramingError on a
    limit broken; the state is then undefined (close the stream)."""

    __slots__ = ("max_frames", "max_frame", "max_message", "_buf", "_start", "_end", "_big", "_big_filled",
                 "_big_lengths")

    def __init__(self, max_frames: int = protocol.MAX_FRAMES,
                 max_frame: int = 2 * protocol.DEFAULT_MAX_FRAME_SIZE,
                 max_message: int = 2 * protocol.DEFAULT_MAX_FRAME_SIZE):
        if not 1 <= max_frames <= protocol.MAX_FRAMES:  # its prefix must fit the buffer
            raise ValueError(f"max_frames must be 1..{protocol.MAX_FRAMES}")
        self.max_frames = max_frames
        self.max_frame = max_frame
        self.max_message = max_message
        self._buf = bytearray(SMALL_BUFFER)
        self._start = 0  # first byte not yet decoded
        self._end = 0  # end of the bytes received
        self._big: bytearray | None = None  # a large message being received into its own buffer
        self._big_filled = 0
        self._big_lengths: tuple[int, ...] = ()

    def buffer(self) -> memoryview:
        """Where the next receive goes (never empty)."""
        if self._big is not None:
            return memoryview(self._big)[self._big_filled:]
        if self._end == len(self._buf):
            self._compact()
        return memoryview(self._buf)[self._end:]

    def pending(self) -> int:
        """Bytes of an incomplete message held (0 between messages)."""
        if self._big is not None:
            return self._big_filled
        return self._end - self._start

    def _compact(self) -> None:
        # Only a message's prefix can be incomplete here (its body fits the
        # buffer, or it became big): move it to the front.
        rest = self._end - self._start
        self._buf[:rest] = self._buf[self._start:self._end]
        self._start, self._end = 0, rest

    def received(self, n: int) -> list[list[Any]]:
        out: list[list[Any]] = []
        if self._big is not None:
            self._big_filled += n
            if self._big_filled < len(self._big):
                return out
            out.append(self._split_big())
            return out
        self._end += n
        buf, end = self._buf, self._end
        while True:
            start = self._start
            avail = end - start
            if avail < 4:
                break
            nframes = _unpack_u32(buf, start)[0]
            if not 1 <= nframes <= self.max_frames:
                raise FramingError(f"message of {nframes} frames (1..{self.max_frames} allowed)")
            prefix = 4 + 4 * nframes
            if avail < prefix:  # (a prefix always fits the buffer: MAX_PREFIX)
                break
            lengths = struct.unpack_from(f"<{nframes}I", buf, start + 4)
            total = 0
            for length in lengths:
                if length > self.max_frame:
                    raise FramingError(f"frame of {length} bytes (at most {self.max_frame})")
                total += length
            if total > self.max_message:
                raise FramingError(f"message of {total} bytes (at most {self.max_message})")
            if prefix + total > SMALL_BUFFER:
                # Its own buffer: what was received of the body moves there
                # once, the rest is received straight into it.
                big = bytearray(total)
                have = min(avail - prefix, total)
                big[:have] = buf[start + prefix:start + prefix + have]
                self._start = self._end = 0
                self._big, self._big_filled, self._big_lengths = big, have, lengths
                if have == total:
                    out.append(self._split_big())
                    # bytes after it (a pipelined next message) were part of this receive
                    rest = avail - prefix - total
                    if rest:
                        self._buf[:rest] = buf[start + prefix + total:end]
                        self._end = rest
                        out.extend(self.received(0))
                return out
            if avail < prefix + total:
                if start + prefix + total > len(buf):
                    self._compact()
                break
            pos = start + prefix
            frames = []
            for length in lengths:
                frames.append(bytes(buf[pos:pos + length]))
                pos += length
            out.append(frames)
            self._start = pos
        if self._start == self._end:
            self._start = self._end = 0
        return out

    def _split_big(self) -> list[memoryview]:
        big = memoryview(self._big)
        frames = []
        pos = 0
        for length in self._big_lengths:
            frames.append(big[pos:pos + length])
            pos += length
        self._big, self._big_filled, self._big_lengths = None, 0, ()
        return frames
