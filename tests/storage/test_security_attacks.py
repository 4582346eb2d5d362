"""A second, unprivileged local user attacks a cluster run by root.

The test creates the user (useradd) and runs its programs with setpriv:
Debian's python3 with a copy of gkfs_client (tests/storage/intruder.py), and
riscv64 coreutils under qemu with a copy of the preload library. Every
attack must fail while the same request by the owner (or on a file the
intruder may use) succeeds, so the checks cannot pass by accident. Needs
root (to create the user), python3-zmq/python3-msgpack and tcpdump
(deploy/setup-debian.sh): without them the tests FAIL, never skip.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gkfs_client import hostsfile, native_paths, protocol, security
from gkfs_client.client import Client

REPO = Path(__file__).resolve().parents[2]
SYS_PYTHON = "/usr/bin/python3"
EACCES, EPERM, ENOENT = 13, 1, 2
SECRET = b"TOPSECRET-" + os.urandom(6).hex().encode()


class Intruder:
    def __init__(self, name: str):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid
        # Its own 0700 directory outside root's private test dirs, holding
        # what it runs: a copy of gkfs_client and of the attack script.
        self.home = Path(tempfile.mkdtemp(prefix="gkfs-intruder-", dir="/tmp"))
        shutil.copytree(REPO / "gkfs_client", self.home / "gkfs_client",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(Path(__file__).with_name("intruder.py"), self.home / "intruder.py")
        for p in [self.home, *self.home.rglob("*")]:
            os.chown(p, self.uid, self.gid)
        os.chmod(self.home, 0o700)

    def run(self, argv: list[str], env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        base = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LC_ALL": "C"}
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--",
                               *argv], env={**base, **(env or {})}, capture_output=True, timeout=timeout,
                              cwd=str(self.home))

    def give(self, src: Path, name: str) -> Path:
        """A copy of a file, owned by the intruder (what the owner would hand over)."""
        dst = self.home / name
        shutil.copy(src, dst)
        os.chown(dst, self.uid, self.gid)
        os.chmod(dst, 0o600)
        return dst

    def attack(self, hosts: Path, key: str, steps: list[dict]) -> dict:
        r = self.run([SYS_PYTHON, str(self.home / "intruder.py"), str(hosts), key, json.dumps(steps)],
                     env={"PYTHONPATH": str(self.home)})
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        return json.loads(r.stdout.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def intruder():
    if os.geteuid() != 0:
        pytest.fail("the attack tests create a local user: run them as root (CI does)")
    for tool in ("useradd", "userdel", "setpriv", "tcpdump"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            pytest.fail(f"{tool} missing: deploy/setup-debian.sh installs it")
    if subprocess.run([SYS_PYTHON, "-c", "import zmq, msgpack; assert zmq.has('curve')"]).returncode:
        pytest.fail(f"{SYS_PYTHON} lacks zmq/msgpack: deploy/setup-debian.sh installs python3-zmq python3-msgpack")
    name = f"gkfsatk{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    who = Intruder(name)
    try:
        yield who
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # only the test user's processes
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(who.home, ignore_errors=True)


def _write(fs: Client, path: str, data: bytes, mode: int = 0o644) -> None:
    fd = fs.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    fs.write(fd, data)
    fs.close(fd)
    fs.chmod(path, mode)


@pytest.fixture
def shared(cluster, intruder):
    """A root cluster with files to attack and a key issued to the intruder."""
    c = cluster(n=3)
    with Client(c.hosts_file) as fs:
        _write(fs, "/secret", SECRET, 0o600)
        _write(fs, "/public", b"public data", 0o644)
        fs.mkdir("/private", 0o700)
        _write(fs, "/private/inner", b"inner", 0o644)
        fs.mkdir("/shared", 0o777)
        fs.chmod("/shared", 0o1777)
        _write(fs, "/shared/rootfile", b"root's", 0o666)
    keyfile = intruder.home / f"issued-{os.urandom(4).hex()}.key"
    security.issue_key(c.hosts_file, intruder.name, keyfile)
    static = c.base / "hosts-for-intruder"  # record + members inline: one file to hand over
    static.write_text(hostsfile.static_text(c.hosts_file))
    hosts = intruder.give(static, "hosts")
    return c, hosts, str(keyfile)


def _status(res: dict, name: str):
    return res[name]["status"]


def test_intruder_without_a_key_gets_nothing(shared, intruder):
    c, hosts, _ = shared
    # root's runtime files: not even readable
    for f in (c.hosts_file, security.keys_dir(c.hosts_file) / security.CLIENT_KEY):
        r = intruder.run(["cat", str(f)])
        assert r.returncode != 0 and b"Permission denied" in r.stderr, r
    # a stolen address (here: handed over), plain or with a key of its own making
    import zmq
    pub, sec = zmq.curve_keypair()
    made_up = f"z85:{pub.decode()},{sec.decode()},{c.key.server_public.decode()}"
    for key in ("none", made_up):
        res = intruder.attack(hosts, key, [{"name": "status", "op": "status", "to": 0},
                                            {"name": "stat", "op": "stat", "args": {"path": "/secret"}}])
        assert _status(res, "status") == "silent" and _status(res, "stat") == "silent", res
    assert "refused a connection" in "".join(c.log(i) for i in range(3))


def test_intruder_with_an_issued_key_cannot_break_permissions(shared, intruder):
    c, hosts, key = shared
    secret_rec = Client(c.hosts_file).stat_record("/secret")
    res = intruder.attack(hosts, key, [
        {"name": "read secret", "client": "read", "path": "/secret"},
        {"name": "read public", "client": "read", "path": "/public"},          # control: allowed
        {"name": "write public", "client": "write", "path": "/public"},
        {"name": "append secret", "client": "append", "path": "/secret"},
        {"name": "rm public", "client": "unlink", "path": "/public"},
        {"name": "rm in sticky dir", "client": "unlink", "path": "/shared/rootfile"},
        {"name": "list private", "client": "listdir", "path": "/private"},
        {"name": "stat in private", "client": "stat", "path": "/private/inner"},
        {"name": "own file in sticky dir", "client": "write", "path": "/shared/mine"},  # control: allowed
        {"name": "chown own file to root", "client": "chown", "path": "/shared/mine", "uid": 0, "gid": 0},
    ])
    assert _status(res, "read secret") == EACCES, res
    assert _status(res, "read public") == 0 and bytes.fromhex(res["read public"]["result"]) == b"public data"
    assert _status(res, "write public") == EACCES
    assert _status(res, "append secret") == EACCES
    assert _status(res, "rm public") == EACCES
    assert _status(res, "rm in sticky dir") == EPERM
    assert _status(res, "list private") == EACCES
    assert _status(res, "stat in private") == EACCES
    assert _status(res, "own file in sticky dir") == 0
    assert _status(res, "chown own file to root") == EPERM
    dk = secret_rec["data_key"]
    mine = Client(c.hosts_file).stat_record("/shared/mine")
    res = intruder.attack(hosts, key, [
        # forged uid/mode, set-uid files
        {"name": "setattr suid", "op": "setattr", "args": {"path": "/public", "mode": 0o4777}},
        {"name": "setattr uid", "op": "setattr", "args": {"path": "/public", "uid": intruder.uid}},
        {"name": "create claiming root", "op": "create",
         "args": {"path": "/shared/suid", "mode": 0o104755, "uid": 0, "gid": 0}},
        {"name": "create in root's /", "op": "create", "args": {"path": "/evil", "mode": 0o644}},
        {"name": "utimens explicit", "op": "utimens", "args": {"path": "/public", "mtime_ns": 1}},
        {"name": "utimens now", "op": "utimens", "args": {"path": "/public", "now": True}},
        # data by key: no capability, a forged one, one of its own file
        {"name": "read_chunks no cap", "op": "read_chunks", "to": "all",
         "args": {"data_key": dk, "chunk_size": c.chunk_size, "chunks": [[0, 0, 16]]}},
        {"name": "read_chunks forged cap", "op": "read_chunks", "to": "all",
         "args": {"data_key": dk, "chunk_size": c.chunk_size, "chunks": [[0, 0, 16]], "cap": "rwd." + "0" * 32}},
        {"name": "write_chunks no cap", "op": "write_chunks", "to": "all", "data": ["41" * 4],
         "args": {"data_key": dk, "chunk_size": c.chunk_size, "chunks": [[0, 0, 4]]}},
        {"name": "remove_chunks no cap", "op": "remove_chunks", "to": "all", "args": {"data_key": dk}},
        {"name": "truncate secret", "op": "truncate", "args": {"path": "/secret", "size": 0}},
        {"name": "lock secret", "op": "lock", "to": 0,
         "args": {"data_key": dk, "owner": "pevil", "space": "flock", "type": 1, "start": 0, "len": 0}},
        # a made-up record: another user's data key under a name it owns
        {"name": "insert forged", "op": "insert",
         "args": {"path": "/shared/alias", "from": "/shared/mine", "replace": True,
                  "record": dict(mine, data_key=dk, uid=intruder.uid)}},
        {"name": "insert from secret", "op": "insert",
         "args": {"path": "/shared/alias", "from": "/secret", "record": secret_rec}},
    ])
    assert _status(res, "setattr suid") == EPERM, res
    assert _status(res, "setattr uid") == EPERM
    assert _status(res, "create claiming root") == 0
    made = res["create claiming root"]["result"]["stat"]
    assert made["uid"] == intruder.uid and made["gid"] == intruder.gid  # its own set-uid file: harmless
    assert _status(res, "create in root's /") == EACCES
    assert _status(res, "utimens explicit") == EPERM
    assert _status(res, "utimens now") == EACCES
    for name in ("read_chunks no cap", "read_chunks forged cap", "write_chunks no cap", "remove_chunks no cap",
                 "truncate secret", "lock secret"):
        assert _status(res, name) == EACCES, (name, res[name])
    assert _status(res, "insert forged") == ENOENT
    assert _status(res, "insert from secret") == EACCES
    with Client(c.hosts_file) as fs:  # nothing changed
        fd = fs.open("/secret", os.O_RDONLY)
        assert fs.read(fd, 100) == SECRET
        fs.close(fd)
        st = fs.stat("/public")
        assert st.st_mode & 0o7777 == 0o644 and st.st_uid == 0
        assert sorted(fs.listdir("/")) == ["private", "public", "secret", "shared"]


def test_revoked_key_is_refused_without_restart(shared, intruder):
    c, hosts, key = shared
    res = intruder.attack(hosts, key, [{"name": "status", "op": "status", "to": 0}])
    assert _status(res, "status") == 0
    assert security.revoke_key(c.hosts_file, intruder.name) == 1
    res = intruder.attack(hosts, key, [{"name": "status", "op": "status", "to": 0}])
    assert _status(res, "status") == "silent"


def test_preload_as_intruder_cannot_read_roots_file(shared, intruder):
    """The issue's first attack: `cat` through the shipped preload library."""
    c, hosts, key = shared
    try:
        sysroot = native_paths.riscv64_sysroot()
        lib = native_paths.intercept_library("riscv64")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"riscv64 preload not built: {exc}")
    mylib = intruder.give(lib, "libgkfs_intercept.so")
    os.chmod(mylib, 0o700)
    env = {"QEMU_LD_PREFIX": str(sysroot), "LD_PRELOAD": str(mylib), "LIBGKFS_HOSTS_FILE": str(hosts),
           "LIBGKFS_KEY_FILE": key, "LIBGKFS_MOUNT": "/gkfs", "LIBGKFS_RPC_TIMEOUT": "5"}
    cat = ["/usr/bin/qemu-riscv64-static", str(sysroot / "usr/bin/cat")]
    ok = intruder.run([*cat, "/gkfs/public"], env=env)
    assert ok.returncode == 0 and ok.stdout == b"public data", ok
    bad = intruder.run([*cat, "/gkfs/secret"], env=env)
    assert bad.returncode != 0 and SECRET not in bad.stdout and b"Permission denied" in bad.stderr, bad
    rm = intruder.run(["/usr/bin/qemu-riscv64-static", str(sysroot / "usr/bin/rm"), "-f", "/gkfs/public"], env=env)
    assert rm.returncode != 0, rm
    assert Client(c.hosts_file).stat("/public").st_size == len(b"public data")
    # a hosts file in a directory others may write is refused by the preload too
    loose = intruder.home / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    os.chown(loose, intruder.uid, intruder.gid)
    shutil.copy(hosts, loose / "hosts")
    os.chown(loose / "hosts", intruder.uid, intruder.gid)
    r = intruder.run([*cat, "/gkfs/public"], env=dict(env, LIBGKFS_HOSTS_FILE=str(loose / "hosts")))
    assert r.returncode != 0 and b"public data" not in r.stdout and b"refusing" in r.stderr, r


def test_planted_runtime_dir_and_hosts_file_refused(intruder, tmp_path):
    """Another user creates the victim's runtime dir first (0777) and its own hosts file."""
    planted = intruder.home / "gkfs-victim"
    r = intruder.run(["sh", "-c", f"mkdir -m 0777 {planted} && chmod 0777 {planted} && "
                                  f"echo '0 tcp://127.0.0.1:9 1 x /gkfs' > {planted}/hosts"])
    assert r.returncode == 0, r
    os.chmod(intruder.home, 0o755)  # let root's processes see it (root could anyway)
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(planted / "hosts"))
    env.pop("XDG_RUNTIME_DIR", None)
    r = subprocess.run(["gkfs-ctl", "cluster", "start", "-n", "1", "--rootdir", str(tmp_path / "d")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "not by you" in r.stderr, r.stderr
    with pytest.raises(hostsfile.HostsFileError, match="not by you"):
        Client(planted / "hosts")
    r = subprocess.run(["gkfs-ctl", "cp-in", "/etc/hostname", "/x"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "not by you" in r.stderr, r.stderr


# ------------------------------------------------------------- capture

def _tcp_payloads(pcap: Path, port: int) -> tuple[bytes, list[tuple[int, bytes]]]:
    """All TCP payload bytes on loopback to/from ``port``, and the client->daemon
    payloads of the first connection in order (what a replay would send)."""
    raw = pcap.read_bytes()
    magic = struct.unpack("<I", raw[:4])[0]
    endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    linktype = struct.unpack(endian + "I", raw[20:24])[0]
    off, everything, first = 24, bytearray(), []
    first_sport = None
    while off + 16 <= len(raw):
        _s, _u, incl, _orig = struct.unpack(endian + "IIII", raw[off:off + 16])
        pkt = raw[off + 16:off + 16 + incl]
        off += 16 + incl
        l2 = {1: 14, 113: 16, 276: 20, 0: 4}.get(linktype, 14)
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack(">HH", tcp[:4])
        payload = tcp[(tcp[12] >> 4) * 4:]
        if port not in (sport, dport) or not payload:
            continue
        everything += payload
        if dport == port:
            first_sport = first_sport or sport
            if sport == first_sport:
                first.append((sport, bytes(payload)))
    return bytes(everything), first


def _capture(port: int, out: Path):
    # -Z root: tcpdump would otherwise drop to its own user, who cannot write into the test dir
    p = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "0", "-Z", "root", "-w", str(out), f"tcp port {port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return p


def _session(c, name: str, data: bytes) -> None:
    with Client(c.hosts_file) as fs:
        _write(fs, name, data)
        fd = fs.open(name, os.O_RDONLY)
        assert fs.read(fd, len(data)) == data
        fs.close(fd)


@pytest.mark.parametrize("mode", ["curve", "off"])
def test_capture_shows_no_plaintext_and_replay_does_nothing(cluster, intruder, tmp_path, mode, monkeypatch):
    extra = ["--security", "off"] if mode == "off" else []
    c = cluster(n=1, extra_args=extra)
    monkeypatch.setenv(security.ENV_SECURITY, mode)
    # What TCP carries is under test: the owner's client on the daemon's
    # host would use the local stream (docs/protocol.md 1.1), off the wire.
    monkeypatch.setenv("LIBGKFS_LOCAL_STREAM", "off")
    port = int(c.address(0).rsplit(":", 1)[1])
    pcap = tmp_path / "lo.pcap"
    tag = os.urandom(8).hex()
    path, data = f"/replay-{tag}", f"SECRETDATA-{tag}".encode() * 64
    dump = _capture(port, pcap)
    try:
        _session(c, path, data)
        time.sleep(0.5)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(10)
    seen, first = _tcp_payloads(pcap, port)
    assert first, f"tcpdump captured nothing on port {port}: {dump.stderr.read()!r}"
    if mode == "off":  # control: the capture does see plaintext when security is off
        assert path.encode() in seen and data[:40] in seen
        return
    assert path.encode() not in seen and f"SECRETDATA-{tag}".encode() not in seen
    assert b"replay-" not in seen
    # Replay the captured client bytes from the intruder's account: the daemon
    # must not run the create again.
    with Client(c.hosts_file) as fs:
        fs.unlink(path)
    blob = b"".join(p for _, p in first).hex()
    script = ("import socket,sys,time\n"
              f"s=socket.create_connection(('127.0.0.1',{port}))\n"
              f"s.sendall(bytes.fromhex('{blob}'))\n"
              "s.settimeout(2)\n"
              "try:\n  got=s.recv(1<<20)\nexcept Exception:\n  got=b''\n"
              "print(len(got))\n")
    r = intruder.run([SYS_PYTHON, "-c", script])
    assert r.returncode == 0, r
    time.sleep(0.5)
    with Client(c.hosts_file) as fs:
        assert fs.listdir("/") == [], "a replayed session re-created the file"
        assert c.conn(0).call("status").result["ops"].get("create", 0) == 1


def test_search_permission_is_needed_on_every_ancestor(shared, intruder):
    """POSIX path resolution: search (x) on every directory of the path, not
    only the parent. root's 0644 file two levels below its 0700 /private is
    out of reach even for a user who knows its full name; the same layout
    under 0755 directories is reachable (the control)."""
    c, hosts, key = shared
    with Client(c.hosts_file) as fs:
        fs.mkdir("/private/deep", 0o755)
        _write(fs, "/private/deep/file", b"deep", 0o644)
        fs.mkdir("/open", 0o755)
        fs.mkdir("/open/deep", 0o755)
        _write(fs, "/open/deep/file", b"open", 0o644)
    steps = []
    for top in ("private", "open"):
        p = f"/{top}/deep/file"
        steps += [{"name": f"stat {top}", "client": "stat", "path": p},
                  {"name": f"read {top}", "client": "read", "path": p},
                  {"name": f"list {top}", "client": "listdir", "path": f"/{top}/deep"},
                  {"name": f"raw stat {top}", "op": "stat", "args": {"path": p}},
                  {"name": f"raw readlink {top}", "op": "readlink", "args": {"path": p}},
                  {"name": f"raw utimens {top}", "op": "utimens", "args": {"path": p, "now": True}},
                  {"name": f"raw create {top}", "op": "create", "args": {"path": p, "mode": 0o100644}}]
    res = intruder.attack(hosts, key, steps)
    for what in ("stat", "read", "list", "raw stat", "raw readlink", "raw utimens", "raw create"):
        assert _status(res, f"{what} private") == EACCES, (what, res[f"{what} private"])
    assert _status(res, "stat open") == 0 and _status(res, "raw stat open") == 0, res
    assert bytes.fromhex(res["read open"]["result"]) == b"open"
    assert res["list open"]["result"] == ["file"]
    assert _status(res, "raw readlink open") == 22  # EINVAL: reached, not a link
    assert _status(res, "raw utimens open") == EACCES  # reached: 0644 is not writable by others
    assert _status(res, "raw create open") == 0  # existing, not exclusive: just opens
    assert res["raw stat private"]["msg"].count("/private") == 1, res["raw stat private"]


def test_status_shows_pid_and_rootdir_only_to_the_cluster_owner(shared, intruder):
    c, hosts, key = shared
    res = intruder.attack(hosts, key, [{"name": "status", "op": "status", "to": 0}])
    assert _status(res, "status") == 0, res
    seen = res["status"]["result"]
    assert "files" in seen and not {"pid", "rootdir", "hostname"} & set(seen), seen
    mine = c.conn(0).call("status").result
    assert mine["pid"] > 0 and mine["rootdir"]


def test_dirent_records_need_search_permission(shared, intruder):
    """get_dirents with ``stats`` (the readdir stat cache) tells no more
    than a stat of each entry would: a directory the user may read but not
    search (0744) lists its names, without records; a 0755 one gives the
    records too (the control)."""
    c, hosts, key = shared
    with Client(c.hosts_file) as fs:
        for d, mode in (("/readonly", 0o744), ("/searchable", 0o755)):
            fs.mkdir(d, 0o755)
            _write(fs, f"{d}/file", b"12345", 0o600)
            fs.chmod(d, mode)
    steps = [{"name": f"{d}", "op": "get_dirents", "to": "all", "args": {"path": f"/{d}", "stats": True}}
             for d in ("readonly", "searchable")]
    steps += [{"name": "stat readonly", "client": "stat", "path": "/readonly/file"},
              {"name": "list readonly", "client": "listdir", "path": "/readonly"}]
    res = intruder.attack(hosts, key, steps)
    for d, with_records in (("readonly", False), ("searchable", True)):
        assert _status(res, d) == 0, res[d]
        names = [e[0] for r in res[d]["each"] for e in r["result"]["entries"]]
        assert names == ["file"]
        records = [s for r in res[d]["each"] for s in r["result"].get("stats", [])]
        if with_records:
            assert len(records) == 1 and records[0][1] == 5 and records[0][0] & 0o777 == 0o600, records
        else:
            assert records == [] and not any("stats" in r["result"] for r in res[d]["each"]), res[d]
    assert _status(res, "stat readonly") == EACCES
    assert res["list readonly"]["result"] == ["file"]
