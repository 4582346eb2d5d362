"""Asking other daemons for records: the directories a permission check needs.

A path's record lives on its metadata owner, its parent directory's record
usually on another daemon. To check "may this caller create/remove a name in
that directory" (and "may it search every directory above") the daemon asks
the owners for the records themselves, all in one parallel round,
over the cluster's own transport (CURVE, with the daemons' key pair as client
key: the ZAP handler recognises it as a peer daemon). Peer lookups are
answered by the receiving thread directly (server.Server._answer_peer), never
queued behind client requests, and the receiving thread keeps reading
requests while workers wait (it never waits on a peer itself), so two
daemons waiting on each other cannot deadlock their worker pools.

Records of other daemons' directories are kept in a cache (daemon.dircache)
that every owner keeps exact: a change of a directory's mode/uid/gid or
existence is followed by ``forget_elsewhere`` (the peer op ``forget``,
acknowledged by every other daemon) before the change is acknowledged to
its client. Where the cache answers, the receiving thread runs the request
itself (no NeedsWorker, no round trip).

One connection set per worker thread (ZeroMQ sockets are not thread-safe);
rebuilt when the hosts file changes or a peer does not answer.
"""
from __future__ import annotations

import contextvars
import errno
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from gkfs_client import distribution, hostsfile, security
from gkfs_client.rpc import Call, Rpc
from gkfs_client.transport import ZmqTransport

from . import dircache
from .siblings import MISS

log = logging.getLogger("gkfs_daemon.peer")

PEER_TIMEOUT_S = 5.0
OWNERS_CACHED = 16384  # directory paths whose owner is remembered

# Set while the receiving thread runs a request itself (server.handle with
# inline ops): a lookup that would wait on another daemon raises NeedsWorker
# instead (before the handler changed anything) and the request goes to a
# worker thread, so the thread that reads requests never waits on the network.
INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("gkfs_inline", default=False)


class NeedsWorker(Exception):
    """This request needs another daemon: run it in a worker (only while INLINE)."""


class Peers:
    def __init__(self, hosts_path: Path, key: security.ServerKey | None, local_get_many, count=None):
        self.hosts_path = hosts_path
        # op counter (DaemonState.count): peer lookups sent, forgets sent
        self.count = count or (lambda op, ok: None)
        self.cache = dircache.DirCache()
        # Paths whose change is committed (or about to be) but not yet
        # forgotten everywhere: a request that would answer from their new
        # state (a client's repeated setattr) waits for it (settled()).
        self._changing: dict[str, int] = {}
        self._settle = threading.Condition()
        self.key = None if key is None else security.ClientKey(key.public, key.public, key.secret)
        # [path] -> [record | None] (one read transaction), for paths this daemon owns
        self.local_get_many = local_get_many
        self.host_id = -1
        self._members: int | None = None  # the cluster record's member count (fixed at its creation)
        self._owners: dict[str, int] = {}
        # Members of this node's daemon: records read from their LMDB (siblings.py).
        self.siblings = None
        self._tls = threading.local()

    def _view(self):
        """(signature, membership, rpc) for this thread. Placement uses the
        record's member count (never the members listed now); a member's
        address is looked up again when it has none or stops answering."""
        s = os.stat(self.hosts_path)
        sig = (s.st_ino, s.st_mtime_ns, s.st_size)
        view = getattr(self._tls, "view", None)
        if view is None or view[0] != sig:
            if view is not None:
                view[2].close()
            m = hostsfile.read_membership(self.hosts_path)
            rpc = Rpc(ZmqTransport([h.address if h else "" for h in m.slots], key=self.key),
                      timeout_s=PEER_TIMEOUT_S, resolve=self._resolve, names=lambda t: f"member {t}")
            view = self._tls.view = (sig, m, rpc)
        return view

    def _resolve(self, target: int) -> str:
        h = hostsfile.read_member(self.hosts_path, target)
        return h.address if h else ""

    def record(self, path: str) -> dict[str, Any] | None:
        """The current record of ``path`` from whichever daemon owns it (None:
        no such path), never from the cache: the cache is exact only in what
        permission checks read (mode, uid, gid, existence), not in times or
        sizes, and a whole record is wanted here (insert's source)."""
        return self.records([path], cached=False)[0]

    def _owner(self, path: str, members: int) -> int:
        """metadata_owner, remembered: the same few directories are checked
        on every request below them (the hash is a Python loop per byte)."""
        if members == 1:
            return 0
        owner = self._owners.get(path)
        if owner is None:
            owner = distribution.metadata_owner(path, members)
            if len(self._owners) >= OWNERS_CACHED:
                self._owners.clear()
            self._owners[path] = owner
        return owner

    def _member_count(self, about: str) -> int:
        members = self._members
        if members is None:  # a cluster's size never changes: read once
            try:
                members = self._members = hostsfile.read_membership(self.hosts_path).members
            except (OSError, hostsfile.HostsFileError) as exc:
                raise OSError(errno.EIO, f"cannot check permissions on {about}: hosts file: {exc}") from None
        return members

    def records(self, paths: list[str], cached: bool = True) -> list[dict[str, Any] | None]:
        """The records of ``paths`` (None: no such path), those held elsewhere
        and not cached asked for all at once: one round trip whatever their
        number. ``cached`` records (directories of other daemons) are exact
        in mode, uid, gid and existence only: for permission checks."""
        members = self._member_count(paths[-1])
        if members == 1 and self.host_id == 0:  # one daemon: every record is here
            return self.local_get_many(paths)
        out: list[dict[str, Any] | None] = [None] * len(paths)
        remote: list[int] = []
        owners = [self._owner(path, members) for path in paths]
        local = [i for i, owner in enumerate(owners) if owner == self.host_id]
        if local:
            for i, rec in zip(local, self.local_get_many([paths[i] for i in local])):
                out[i] = rec
        at = None
        for i, path in enumerate(paths):
            if owners[i] == self.host_id:
                continue  # read above
            if self.siblings is not None and (rec := self.siblings.get(owners[i], path)) is not MISS:
                out[i] = rec
            else:
                if at is None:
                    at = dircache.now()
                rec = self.cache.get(path, at) if cached else None
                if rec is not None:
                    out[i] = rec
                else:
                    remote.append(i)
        if not remote:
            return out
        if INLINE.get():
            raise NeedsWorker(paths[remote[0]])
        gen = self.cache.generation()
        sent_at = dircache.now()  # the leases of what comes back start before it was read
        self.count("peer_lookup", True)
        try:
            _sig, _m, rpc = self._view()
        except (OSError, hostsfile.HostsFileError) as exc:
            raise OSError(errno.EIO, f"cannot check permissions on {paths[-1]}: hosts file: {exc}") from None
        calls = [Call(owners[i], "stat", {"path": paths[i], "peer": True}) for i in remote]
        try:
            replies = rpc.call_many(calls, check=False)
        except OSError as exc:
            self._tls.view = None
            rpc.close()
            raise OSError(errno.EIO, f"cannot check permissions on {paths[-1]}: a member holding a directory "
                                     f"of its path did not answer ({exc.strerror or exc})") from None
        for i, call, reply in zip(remote, calls, replies):
            if reply.status == errno.ENOENT:
                continue
            if reply.status:
                raise OSError(errno.EIO, f"cannot check permissions on {paths[i]}: member {call.target}: "
                              f"{reply.message}")
            out[i] = rec = reply.result["stat"]
            self.cache.store(paths[i], rec, gen, sent_at)
        return out

    def changing(self, paths: list[str]) -> None:
        """``paths`` are about to change (called inside the change's
        transaction): until forget_elsewhere has run, settled() waits."""
        with self._settle:
            for p in paths:
                self._changing[p] = self._changing.get(p, 0) + 1

    def is_changing(self, path: str) -> bool:
        return path in self._changing

    def settled(self, path: str) -> None:
        """Return once no change of ``path`` is waiting for other daemons to
        forget it (never call it in the receiving thread or in a transaction)."""
        with self._settle:
            self._settle.wait_for(lambda: path not in self._changing, dircache.FORGET_WAIT_S + 1)

    def _settle_done(self, paths: list[str]) -> None:
        with self._settle:
            for p in paths:
                n = self._changing.get(p, 0) - 1
                if n > 0:
                    self._changing[p] = n
                else:
                    self._changing.pop(p, None)
            self._settle.notify_all()

    def forget_elsewhere(self, paths: list[str], below: bool, changed_at: float) -> None:
        try:
            self._forget_elsewhere(paths, below, changed_at)
        finally:
            self._settle_done(paths)

    def _forget_elsewhere(self, paths: list[str], below: bool, changed_at: float) -> None:
        """After this daemon changed the mode/uid/gid or the existence of the
        directory records ``paths`` (committed at ``changed_at``, dircache.now()):
        every other running member drops them from its cache (``below``:
        and what it caches under them), acknowledged, before the caller
        replies to its client. A member that does not acknowledge: wait
        until FORGET_WAIT_S after the change, by which time every lease it
        could hold on the old record has run out (daemon.dircache). Never
        raises: the change is made; at worst it is acknowledged late."""
        self.cache.forget(paths, below)
        deadline = changed_at + dircache.FORGET_WAIT_S
        try:
            members = self._member_count(paths[-1])
            if members <= 1:
                return
            _sig, m, rpc = self._view()
            # A member with no entry in the hosts file is not running (it
            # registers before it serves, leaves after it stopped): no cache.
            targets = [t for t in range(members) if t != self.host_id and t < len(m.slots) and m.slots[t]]
            if not targets:
                return
            self.count("peer_forget_sent", True)
            log.debug("forget %s (below: %s) on members %s", paths, below, targets)
            args = {"paths": paths, "below": below}
            results = rpc.call_each([Call(t, "forget", args) for t in targets],
                                    timeout_s=max(0.01, deadline - dircache.now()))
            silent = [t for t, r in zip(targets, results) if isinstance(r, OSError) or r.status]
        except Exception as exc:  # noqa: BLE001 - whatever failed, the wait below keeps it safe
            self._tls.view = None
            silent = [f"? ({exc})"]
        if silent:
            self.count("peer_forget_unacknowledged", False)
            log.warning("member(s) %s did not acknowledge forgetting %s: the reply waits %.1f s after the change "
                        "(their cached copies expire by then)", silent, paths, dircache.FORGET_WAIT_S)
            left = deadline - dircache.now()
            if left > 0:
                time.sleep(left)
