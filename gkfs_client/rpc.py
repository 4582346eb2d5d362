"""Request/reply over a Transport: request ids, fan-out, timeouts, errors.

``Rpc.call_many`` is the only primitive the client uses: it sends every
request first (to any mix of daemons) and only then waits, matching replies
by request id, so N daemons cost one round trip, not N. A member that does
not answer within the timeout, or has no entry in the hosts file, becomes
OSError(EIO) naming it; replies that arrive later for a forgotten request
are recognised by id and dropped.

Finding a restarted member: while a member is silent, the client asks its
``resolve`` callback (the hosts file) every RESOLVE_INTERVAL_S for the
member's address. When it changed (the member restarted and registered
again), the socket is pointed at the new address and the waiting requests
are sent again, so a running job carries on within its timeout. Only
requests that are safe to repeat are sent again; the others (create,
remove, rename... whose first copy may have run before the old process
died) fail with EIO saying their outcome is unknown.
"""
from __future__ import annotations

import errno
import itertools
import time
from time import monotonic as _monotonic
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from gkfs_client import protocol
from gkfs_client.transport import Transport

DEFAULT_TIMEOUT_S = 10.0
RESOLVE_INTERVAL_S = 0.5  # a silent member: its entry read again / reconnected this often
# Ops whose repetition cannot change the outcome (same bytes at the same
# place, max(size), a read...): sent again to a member that restarted.
REPEATABLE_OPS = frozenset({
    "ping", "status", "statfs", "stat", "get_dirents", "read_chunks", "write_chunks", "truncate",
    "truncate_chunks", "remove_chunks", "fsync", "readlink", "utimens", "setattr",
})


@dataclass
class Call:
    target: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    data: Sequence[Any] = ()


_DATA_OPS = frozenset({"read_chunks", "write_chunks"})


def _repeatable(call: Call) -> bool:
    if call.op == "update_size":
        return not call.args.get("append")
    if call.op == "create":
        return not call.args.get("exclusive")
    if call.op == "insert":
        return bool(call.args.get("replace"))
    return call.op in REPEATABLE_OPS


class Rpc:
    def __init__(self, transport: Transport, timeout_s: float = DEFAULT_TIMEOUT_S,
                 resolve: Callable[[int], str | None] | None = None,
                 names: Callable[[int], str] | None = None):
        self.transport = transport
        self.timeout_s = timeout_s
        # resolve(target) -> the member's current address ("" / None: not registered)
        self.resolve = resolve
        self.name = names or (lambda t: f"daemon {self.addresses[t]}")
        self._ids = itertools.count(1)
        # one Packer for every request: an Rpc is used by one thread at a time (its sockets are)
        self._pack = protocol.request_packer()
        # Seconds from sending to each reply of the last exchange (None if
        # silent): per-daemon latency for `gkfs-ctl status`, at no extra cost.
        self.last_rtts: list[float | None] = []

    @property
    def addresses(self) -> Sequence[str]:
        return self.transport.addresses

    def call(self, target: int, op: str, args: dict[str, Any] | None = None,
             data: Sequence[Any] = (), *, check: bool = True) -> protocol.Reply:
        """One request: what nearly every file call is, so it has its own
        path with no per-call lists, dicts or closures. Send, wait for the
        first reply; when it is this request's and final, that is the whole
        call. Anything else (silence, a stray or EAGAIN reply, a member
        without an address) continues in the general exchange with the
        same request id and clock, so timeouts, following restarts and
        resends behave exactly as for call_many."""
        if args is None:
            args = {}
        transport = self.transport
        if not transport.addresses[target]:
            return self.call_many([Call(target, op, args, data)], check=check)[0]
        rid = next(self._ids)
        started = _monotonic()
        transport.send(target, protocol.encode_request(op, args, data, req_id=rid, pack=self._pack))
        timeout = self.timeout_s
        wait = timeout if self.resolve is None or timeout < RESOLVE_INTERVAL_S else RESOLVE_INTERVAL_S
        # Only the target's socket: nothing else is outstanding, and what
        # other daemons may still send (late replies to requests given up
        # on) stays queued for the next exchange, which drops it by id.
        frames = transport.receive_from(target, int(wait * 1000))
        if frames is None:
            got = []
        else:
            try:
                reply = protocol.decode_reply(frames)
            except protocol.ProtocolError as exc:
                raise OSError(exc.errno, f"{self.name(target)}: {exc.message}") from None
            if reply.req_id == rid and reply.status != errno.EAGAIN:
                self.last_rtts = [_monotonic() - started]
                if check and reply.status:
                    raise _error(Call(target, op, args, data), reply, self.name(target))
                return reply
            got = [(target, frames)]
        call = Call(target, op, args, data)
        return self._finish([call], timeout, check, self._exchange([call], timeout, sent=(rid, started, got)))[0]

    def call_many(self, calls: Sequence[Call], *, check: bool = True,
                  timeout_s: float | None = None) -> list[protocol.Reply]:
        """Send all calls, then collect all replies (in the order of ``calls``).

        A daemon that stays silent raises OSError(EIO)
        naming it. With ``check`` the first failed reply (in call order) is
        raised as OSError(status, message) once every reply is in, so no
        request is left outstanding behind an exception.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        return self._finish(calls, timeout, check, self._exchange(calls, timeout))

    def _finish(self, calls: Sequence[Call], timeout: float, check: bool,
                replies: list[protocol.Reply | OSError | None]) -> list[protocol.Reply]:
        silent = [i for i, r in enumerate(replies) if r is None]
        if silent:
            names = ", ".join(sorted({self.name(calls[i].target) for i in silent}))
            ops = "/".join(sorted({calls[i].op for i in silent}))
            raise OSError(errno.EIO, f"gkfs {names} did not answer {ops} within {timeout:g} s "
                                     "(down, or refusing this client's key? see gkfs-ctl status)")
        for r in replies:
            if isinstance(r, OSError):
                raise r
        if check:
            for c, r in zip(calls, replies):
                if r.status:
                    raise _error(c, r, self.name(c.target))
        return replies  # type: ignore[return-value]

    def call_each(self, calls: Sequence[Call], *, timeout_s: float | None = None
                  ) -> list[protocol.Reply | OSError]:
        """Like call_many, but one result per call: a Reply (any status) or
        the OSError for a daemon that did not answer. For status/ping, where
        a down daemon is an answer, not a failure of the whole command."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        out: list[protocol.Reply | OSError] = []
        for c, r in zip(calls, self._exchange(calls, timeout, tolerate_bad=True)):
            if r is None:
                r = OSError(errno.EIO, f"gkfs {self.name(c.target)} did not answer {c.op} within {timeout:g} s")
            out.append(r)
        return out

    def _current(self, target: int) -> str | None:
        """The member's address now per the hosts file (None if unknown)."""
        if self.resolve is None:
            return None
        try:
            return self.resolve(target) or ""
        except Exception:  # a hosts file being rewritten or unreadable: keep the old one
            return None

    def _retarget(self, target: int, address: str) -> None:
        self.transport.retarget(target, address)

    def _exchange(self, calls: Sequence[Call], timeout: float, tolerate_bad: bool = False,
                  sent: tuple[int, float, list] | None = None) -> list[protocol.Reply | OSError | None]:
        """Send everything, then wait; None marks a call whose daemon stayed silent.

        ``sent``: (request id, send time, messages received so far) of the
        single call ``call`` already sent: carry on with it from there."""
        replies: list[protocol.Reply | OSError | None] = [None] * len(calls)
        pending: dict[int, int] = {}  # request id -> position in calls

        def send(pos: int) -> None:
            c = calls[pos]
            rid = next(self._ids)
            pending[rid] = pos
            self.transport.send(c.target, protocol.encode_request(c.op, c.args, c.data, req_id=rid, pack=self._pack))

        received: list = []
        if sent is not None:
            rid, started, received = sent
            pending[rid] = 0
        else:
            for pos, c in enumerate(calls):
                if not self.addresses[c.target]:
                    addr = self._current(c.target)
                    if addr:
                        self._retarget(c.target, addr)
                    else:
                        replies[pos] = OSError(errno.EIO, f"gkfs {self.name(c.target)} is not registered "
                                                          "(down? see gkfs-ctl status)")
                        continue
                send(pos)
            started = time.monotonic()
        rtts: list[float | None] = [None] * len(calls)
        self.last_rtts = rtts
        deadline = started + timeout
        next_resolve = started + RESOLVE_INTERVAL_S
        reconnected: set[int] = set()
        while pending:
            if received:  # what the single call's first wait got (``sent``)
                batch, received = received, []
            else:
                now = time.monotonic()
                left_ms = int((deadline - now) * 1000)
                if left_ms <= 0:
                    # Drop what is still queued for the silent daemons: after a
                    # timeout those requests are stale and must not run later.
                    for target in sorted({calls[pos].target for pos in pending.values()}):
                        self.transport.reset(target)
                    break
                if self.resolve is not None and now >= next_resolve:
                    next_resolve = now + RESOLVE_INTERVAL_S
                    self._follow_restarts(calls, pending, replies, send, reconnected, now - started, timeout)
                    if not pending:
                        break
                wait_ms = left_ms if self.resolve is None else min(left_ms, int(RESOLVE_INTERVAL_S * 1000))
                batch = self.transport.receive(wait_ms)
            for target, frames in batch:
                try:
                    reply = protocol.decode_reply(frames)
                except protocol.ProtocolError as exc:
                    err = OSError(exc.errno, f"{self.name(target)}: {exc.message}")
                    pos = pending.pop(exc.req_id, None)
                    if tolerate_bad and pos is not None:
                        replies[pos] = err
                        continue
                    raise err from None
                pos = pending.pop(reply.req_id, None)
                if pos is None:
                    continue  # late reply to a request we already gave up on
                if reply.status == errno.EAGAIN and time.monotonic() < deadline:
                    # a directory rename is moving this path (protocol 4.8): ask again
                    time.sleep(0.005)
                    rid = next(self._ids)
                    pending[rid] = pos
                    c = calls[pos]
                    self.transport.send(c.target, protocol.encode_request(c.op, c.args, c.data, req_id=rid, pack=self._pack))
                    continue
                replies[pos] = reply
                rtts[pos] = time.monotonic() - started
        return replies

    def _follow_restarts(self, calls, pending: dict[int, int], replies: list, send,
                         reconnected: set[int], waited: float, timeout: float) -> None:
        """Silent members: one that registered a new address (restarted) is
        reconnected there; one at the same address gets a new connection
        once (a request written into a connection a network cut broke is
        lost, not delayed). Either way only requests safe to repeat are
        sent again; the others fail with EIO (outcome unknown) on a restart
        and wait for their timeout otherwise."""
        for target in sorted({calls[pos].target for pos in pending.values()}):
            addr = self._current(target)
            moved = bool(addr) and addr != self.addresses[target]
            if not moved and target in reconnected:
                continue
            waiting = sorted(pos for rid, pos in pending.items() if calls[pos].target == target)
            if not moved and not all(_repeatable(calls[pos]) for pos in waiting):
                continue
            # Data requests may just be slow (64 MiB under load): a new
            # connection for them only after half the timeout.
            if not moved and waited < timeout / 2 and any(calls[pos].op in _DATA_OPS for pos in waiting):
                continue
            for rid in [rid for rid, pos in pending.items() if calls[pos].target == target]:
                del pending[rid]
            reconnected.add(target)
            if moved:
                self._retarget(target, addr)
            else:
                self.transport.reset(target)
            for pos in waiting:
                if _repeatable(calls[pos]):
                    send(pos)
                else:
                    replies[pos] = OSError(errno.EIO, f"gkfs {self.name(target)} restarted while "
                                                      f"{calls[pos].op} was in flight: its outcome is unknown")

    def close(self) -> None:
        self.transport.close()


def _error(call: Call, reply: protocol.Reply, address: str) -> OSError:
    what = call.args.get("path") or call.args.get("old") or call.args.get("data_key") or ""
    msg = reply.message or protocol.strerror(reply.status)
    # OSError(errno, ...) picks the subclass (FileNotFoundError, FileExistsError...).
    return OSError(reply.status, f"{call.op} {what}: {msg} ({address})".replace("  ", " "))
