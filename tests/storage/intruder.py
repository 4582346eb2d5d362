"""The attacker's program for test_security_attacks.py, run as a second,
unprivileged local user with Debian's python3 (root's Python may not be
readable to that user).

    python3 intruder.py HOSTS_FILE KEY_FILE|none STEPS_JSON

Each step is {"name", "op", "args", "to"} sent raw over one connection per
daemon ("to": "meta" = the metadata owner of args.path, "all" = every
daemon, or a host index), or {"name", "client": "read"|"write"|"append"|
"unlink"|"chmod"|"listdir"|"stat", "path", ...} through the Python Client.
Prints one JSON line: {name: {"status": errno or 0, "result": ...}}; a
daemon that never answers gives status "silent".
"""
from __future__ import annotations

import json
import os
import sys

import zmq

from gkfs_client import distribution, hostsfile, protocol, security

TIMEOUT_MS = 2000


def raw_steps(hosts, key, steps, out):
    ctx = zmq.Context()
    socks = {}

    def sock(i):
        if i not in socks:
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            security.apply_client(s, key)
            s.connect(hosts[i].address)
            socks[i] = s
        return socks[i]

    rid = 0
    for st in steps:
        to = st.get("to", "meta")
        args = st.get("args", {})
        targets = (range(len(hosts)) if to == "all" else
                   [distribution.metadata_owner(args["path"], len(hosts))] if to == "meta" else [int(to)])
        res = []
        for i in targets:
            rid += 1
            s = sock(i)
            data = [bytes.fromhex(d) for d in st.get("data", [])]
            s.send_multipart(protocol.encode_request(st["op"], args, data, req_id=rid))
            if not s.poll(TIMEOUT_MS):
                res.append({"status": "silent"})
                s.close(0)
                del socks[i]
                continue
            r = protocol.decode_reply(s.recv_multipart())
            res.append({"status": r.status, "msg": r.message, "result": r.result,
                        "data": [bytes(d).hex() for d in r.data]})
        out[st["name"]] = res[0] if len(res) == 1 else {"status": max((x["status"] for x in res),
                                                                      key=lambda v: (v != 0, str(v))),
                                                        "each": res}
    for s in socks.values():
        s.close(0)
    ctx.term()


def client_step(fs, st):
    c, p = st["client"], st.get("path")
    if c == "read":
        fd = fs.open(p, os.O_RDONLY)
        try:
            return fs.read(fd, 1 << 20).hex()
        finally:
            fs.close(fd)
    if c in ("write", "append"):
        fd = fs.open(p, os.O_WRONLY | (os.O_APPEND if c == "append" else 0) | os.O_CREAT, 0o644)
        try:
            return fs.write(fd, st.get("data", "pwned").encode())
        finally:
            fs.close(fd)
    if c == "unlink":
        return fs.unlink(p)
    if c == "chmod":
        return fs.chmod(p, st["mode"])
    if c == "chown":
        return fs.chown(p, st["uid"], st["gid"])
    if c == "listdir":
        return fs.listdir(p)
    if c == "stat":
        return fs.stat_record(p)
    if c == "mkdir":
        return fs.mkdir(p)
    raise ValueError(c)


def main() -> int:
    hosts_file, key_file, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if key_file == "none":
        key = None
    elif key_file.startswith("z85:"):  # a key pair made up on the spot: pub,secret,server
        pub, sec, srv = key_file[4:].split(",")
        key = security.ClientKey(srv.encode(), pub.encode(), sec.encode())
    else:
        key = security.load_client_key(key_file)
    hosts = hostsfile.read_hosts(hosts_file)
    out: dict = {}
    raw = [s for s in steps if "op" in s]
    if raw:
        raw_steps(hosts, key, raw, out)
    cl = [s for s in steps if "client" in s]
    if cl:
        os.environ[security.ENV_KEY_FILE] = key_file
        os.environ["LIBGKFS_RPC_TIMEOUT"] = "3"
        from gkfs_client.client import Client
        with Client(hosts_file) as fs:
            for st in cl:
                try:
                    out[st["name"]] = {"status": 0, "result": client_step(fs, st)}
                except OSError as exc:
                    out[st["name"]] = {"status": exc.errno or -1, "msg": str(exc)}
    print(json.dumps(out, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
