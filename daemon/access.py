"""Permission rules the daemon enforces for the caller the transport authenticated.

POSIX rules, as Linux applies them: permission bits (owner, group, other;
root passes read/write always and execute when any x bit is set),
ownership rules for chmod/chown/utimens, sticky directories, set-id bits
cleared by chown and by a chmod from outside the file's group.

File data is reached by ``data_key`` on daemons that do not hold the
file's record, so access to it is a capability: the metadata owner hands
out ``cap`` = "<rights>.<mac>" with every stat record, where rights is a
subset of "rwd" the caller had at that moment (r/w from the permission
bits, rw for the creator of a new file, d for the one who removed it) and
mac = HMAC-SHA256(cluster cap key, data_key|rights|caller uid). Any daemon
of the cluster checks it without asking anyone; it is worthless to
another uid. Like an open file descriptor, it keeps working after a chmod.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import stat as st
from typing import Any

from gkfs_client.security import Identity

R, W, X = 4, 2, 1


def may(who: Identity, rec: dict[str, Any], want: int) -> bool:
    mode = rec["mode"]
    if who.uid == 0:
        return not want & X or st.S_ISDIR(mode) or bool(mode & 0o111)
    if who.uid == rec["uid"]:
        bits = (mode >> 6) & 7
    elif who.in_group(rec["gid"]):
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def _what(want: int) -> str:
    return "".join(c for c, b in (("read", R), ("write", W), ("search", X)) if want & b) or "access"


def require(who: Identity, rec: dict[str, Any], want: int, path: str) -> None:
    if not may(who, rec, want):
        raise OSError(errno.EACCES, f"permission denied ({_what(want)}, uid {who.uid}): {path}")


def require_dir(who: Identity, rec: dict[str, Any] | None, want: int, path: str) -> dict[str, Any]:
    if rec is None:
        raise OSError(errno.ENOENT, f"no such directory: {path}")
    if not st.S_ISDIR(rec["mode"]):
        raise OSError(errno.ENOTDIR, f"not a directory: {path}")
    require(who, rec, want, path)
    return rec


def check_sticky(who: Identity, parent: dict[str, Any], rec: dict[str, Any] | None, path: str) -> None:
    """In a sticky directory only the file's owner, the directory's owner or
    root may remove or rename over a name."""
    if rec is None or not parent["mode"] & st.S_ISVTX or who.uid in (0, parent["uid"], rec["uid"]):
        return
    raise OSError(errno.EPERM, f"operation not permitted (sticky directory, not the owner): {path}")


def is_owner(who: Identity, rec: dict[str, Any]) -> bool:
    return who.uid in (0, rec["uid"])


def setattr_policy(who: Identity, rec: dict[str, Any], mode: int | None, uid: int | None,
                   gid: int | None, path: str) -> tuple[int | None, int | None, int | None]:
    """chmod/chown rules: returns the (mode, uid, gid) to apply, or raises EPERM."""
    perm = errno.EPERM
    if uid is not None and uid != rec["uid"] and who.uid != 0:
        raise OSError(perm, f"only root may give a file away (chown to uid {uid}): {path}")
    if gid is not None and gid != rec["gid"] and who.uid != 0 and not (who.uid == rec["uid"] and who.in_group(gid)):
        raise OSError(perm, f"chgrp to gid {gid} needs ownership and membership of that group: {path}")
    if uid is not None or gid is not None:
        if uid is not None and uid != rec["uid"] or gid is not None and gid != rec["gid"]:
            if not is_owner(who, rec):
                raise OSError(perm, f"not the owner: {path}")
        if not st.S_ISDIR(rec["mode"]):
            # chown drops set-user-ID and (when group-executable) set-group-ID
            cur = mode if mode is not None else st.S_IMODE(rec["mode"])
            cur &= ~st.S_ISUID
            if cur & 0o010:
                cur &= ~st.S_ISGID
            if cur != st.S_IMODE(rec["mode"]) or mode is not None:
                mode = cur
    if mode is not None and mode != st.S_IMODE(rec["mode"]) or mode is not None and uid is None and gid is None:
        if not is_owner(who, rec):
            raise OSError(perm, f"only the owner may chmod: {path}")
        group = rec["gid"] if gid is None else gid
        if who.uid != 0 and not st.S_ISDIR(rec["mode"]) and not who.in_group(group):
            mode &= ~st.S_ISGID
    return mode, uid, gid


# ------------------------------------------------------------ capabilities

# Recent MACs: a stat, the write after it and the next stat of the same file
# by the same user need the same one. Bounded; cleared when full.
_MACS: dict[tuple[bytes, str, str, int], str] = {}
_MACS_MAX = 8192


# HMAC-SHA256 keyed with each secret once: a copy of it costs less than
# keying a new one for every MAC.
_KEYED: dict[bytes, Any] = {}


def _mac(secret: bytes, data_key: str, rights: str, who: Identity) -> str:
    key = (secret, data_key, rights, who.uid)
    mac = _MACS.get(key)
    if mac is None:
        keyed = _KEYED.get(secret)
        if keyed is None:
            if len(_KEYED) >= 16:
                _KEYED.clear()
            keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
        h = keyed.copy()
        h.update(f"{data_key}|{rights}|{who.uid}".encode())
        mac = h.hexdigest()[:32]
        if len(_MACS) >= _MACS_MAX:
            _MACS.clear()
        _MACS[key] = mac
    return mac


def make_cap(secret: bytes, data_key: str, rights: str, who: Identity) -> str:
    return f"{rights}.{_mac(secret, data_key, rights, who)}"


def rights_for(who: Identity, rec: dict[str, Any], extra: str = "") -> str:
    """The rights of a capability for ``rec``: r and w where its mode grants
    them or ``extra`` adds them (then the mode is not consulted), d where
    ``extra`` has it; always in the order "rwd"."""
    return (("r" if "r" in extra or may(who, rec, R) else "")
            + ("w" if "w" in extra or may(who, rec, W) else "")
            + ("d" if "d" in extra else ""))


def check_cap(secret: bytes, data_key: str, cap: Any, who: Identity, need: str) -> bool:
    """Whether ``cap`` grants the caller one of the rights in ``need`` on data_key."""
    if not isinstance(cap, str) or "." not in cap:
        return False
    rights, _, mac = cap.partition(".")
    if not any(r in rights for r in need):
        return False
    return hmac.compare_digest(mac, _mac(secret, data_key, rights, who))


def require_cap(secret: bytes, data_key: str, cap: Any, who: Identity, need: str) -> None:
    if not check_cap(secret, data_key, cap, who, need):
        what = {"r": "read", "w": "write"}.get(need, "use")
        raise OSError(errno.EACCES, f"permission denied: no valid capability to {what} the data of this file "
                                    f"(get one from stat/open as a user allowed to)")
