"""`gkfs-ctl key issue|revoke|list`: who may use a cluster.

Every cluster has a registry of client keys beside its hosts file
(``<hosts file>.keys/clients``); the owner's key is made with the cluster.
``issue USER`` makes a new key standing for a local user of a shared
cluster and writes it (owner-only, chowned to USER when run as root) for
that user to pass in LIBGKFS_KEY_FILE; ``revoke NAME`` removes it: the
daemons re-read the registry, so its next connection is refused without a
restart (connections already open stay until they close).
"""
from __future__ import annotations

from pathlib import Path

from gkfs_client import hostsfile, security
from gkfs_client.ctl._common import EXIT_FAIL, EXIT_OK, error, err_console


def register(subparsers) -> None:
    p = subparsers.add_parser("key", help="issue, revoke or list the client keys of a cluster")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    i = sub.add_parser("issue", help="issue a client key standing for a local user")
    i.add_argument("user", help="local user name or uid the key stands for (its uid, gid and groups)")
    i.add_argument("-o", "--output", required=True,
                   help="file to write the key to (must not exist; mode 0600, owned by USER when run as root); "
                   "the user points LIBGKFS_KEY_FILE at it")
    i.add_argument("--name", help="name of the key in the registry (default: the user name)")
    i.set_defaults(func=run_issue)
    r = sub.add_parser("revoke", help="revoke a key (by name or public key); new connections are refused at once")
    r.add_argument("name")
    r.set_defaults(func=run_revoke)
    ls = sub.add_parser("list", help="list the keys that may connect")
    ls.set_defaults(func=run_list)


def _hosts(args) -> Path:
    return hostsfile.resolve_hosts_file(args.hosts_file)


def run_issue(args) -> int:
    try:
        e = security.issue_key(_hosts(args), args.user, args.output, args.name)
    except (security.SecurityError, OSError) as exc:
        error("key issue", str(exc))
        return EXIT_FAIL
    err_console.print(f"issued key {e.name} (uid {e.identity.uid}, gid {e.identity.gid}) -> {args.output}; "
                      f"the user sets LIBGKFS_KEY_FILE={args.output}", markup=False)
    return EXIT_OK


def run_revoke(args) -> int:
    try:
        n = security.revoke_key(_hosts(args), args.name)
    except (security.SecurityError, OSError) as exc:
        error("key revoke", str(exc))
        return EXIT_FAIL
    if not n:
        error("key revoke", f"no key named {args.name!r}")
        return EXIT_FAIL
    err_console.print(f"revoked {n} key(s) named {args.name}", markup=False)
    return EXIT_OK


def run_list(args) -> int:
    try:
        entries = security.list_keys(_hosts(args))
    except (security.SecurityError, OSError) as exc:
        error("key list", str(exc))
        return EXIT_FAIL
    for e in entries:
        print(f"{e.name}\tuid {e.identity.uid}\tgid {e.identity.gid}\t{e.public.decode()}")
    return EXIT_OK
