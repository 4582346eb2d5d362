"""Security, part 1: owner-only files, keys, CURVE admission, key revocation.

Run as any user; the attacks by a second local user are in
test_security_attacks.py.
"""
from __future__ import annotations

import os
import stat
import subprocess

import pytest
import zmq

from gkfs_client import hostsfile, security
from gkfs_client.client import Client

from test_ctl import ctl, ctl_env  # noqa: F401  (fixture)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_cluster_files_are_owner_only(cluster):
    c = cluster(n=2)
    with Client(c.hosts_file) as fs:
        fd = fs.open("/secret-name.txt", os.O_CREAT | os.O_WRONLY, 0o644)
        fs.write(fd, b"x")
        fs.close(fd)
    kd = security.keys_dir(c.hosts_file)
    assert _mode(kd) == 0o700
    for f in (security.SERVER_KEY, security.CAP_KEY, security.CLIENT_KEY, security.REGISTRY):
        assert _mode(kd / f) == 0o600, f
    assert _mode(c.hosts_file) == 0o600
    for rd in c.rootdirs:
        assert _mode(rd) == 0o700
        data = rd / "metadata" / "data.mdb"
        assert _mode(data) & 0o077 == 0, oct(_mode(data))
        for p in rd.rglob("*"):
            assert _mode(p) & 0o077 == 0, (p, oct(_mode(p)))


def _plain_or_foreign(conn_key, c, zmq_ctx) -> bool:
    """Whether a ping over ``conn_key`` (None: plain TCP) gets any answer."""
    s = zmq_ctx.socket(zmq.DEALER)
    s.linger = 0
    security.apply_client(s, conn_key)
    s.connect(c.address(0))
    from gkfs_client import protocol
    s.send_multipart(protocol.encode_request("status", {}, (), req_id=1))
    answered = bool(s.poll(1500))
    s.close(0)
    return answered


def test_only_issued_keys_get_in(cluster, zmq_ctx):
    c = cluster(n=1)
    owner = c.key
    assert _plain_or_foreign(owner, c, zmq_ctx)
    # plain TCP: refused before any request is read
    assert not _plain_or_foreign(None, c, zmq_ctx)
    # a key pair of our own making, even with the right server key
    pub, sec = zmq.curve_keypair()
    assert not _plain_or_foreign(security.ClientKey(owner.server_public, pub, sec), c, zmq_ctx)
    # the owner's key against a wrong server key (a spoofed daemon would need the secret)
    spub, _ = zmq.curve_keypair()
    assert not _plain_or_foreign(security.ClientKey(spub, owner.public, owner.secret), c, zmq_ctx)
    assert "refused a connection" in c.log(0)


def test_issue_and_revoke_without_restart(cluster, zmq_ctx, tmp_path):
    c = cluster(n=1)
    env = dict(os.environ, LIBGKFS_HOSTS_FILE=str(c.hosts_file))
    out = tmp_path / "alice.key"
    r = subprocess.run(["gkfs-ctl", "key", "issue", "root", "--name", "second-root", "-o", str(out)],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _mode(out) == 0o600
    issued = security.load_client_key(out)
    assert _plain_or_foreign(issued, c, zmq_ctx)
    listing = subprocess.run(["gkfs-ctl", "key", "list"], env=env, capture_output=True, text=True).stdout
    assert "second-root" in listing
    r = subprocess.run(["gkfs-ctl", "key", "revoke", "second-root"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not _plain_or_foreign(issued, c, zmq_ctx)  # same daemon, no restart
    assert _plain_or_foreign(c.key, c, zmq_ctx)


def test_unsafe_runtime_dir_and_hosts_file_refused(tmp_path, ctl_env):  # noqa: F811
    rt = tmp_path / "rt"
    rt.mkdir(mode=0o777)
    os.chmod(rt, 0o777)
    env = dict(ctl_env, LIBGKFS_HOSTS_FILE=str(rt / "hosts"))
    r = ctl("cluster", "start", "-n", "1", "--rootdir", str(tmp_path / "d"), env=env)
    assert r.returncode != 0
    assert "writable by other users" in r.stderr and "chmod go-w" in r.stderr, r.stderr
    # a hosts file others may write is not read
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    hosts = safe / "hosts"
    hosts.write_text("0 tcp://127.0.0.1:1 1 h /gkfs\n")
    os.chmod(hosts, 0o666)
    with pytest.raises(hostsfile.HostsFileError, match="writable by other users"):
        Client(hosts)


def test_security_off_needs_saying_so(cluster, tmp_path):
    c = cluster(n=1, extra_args=["--security", "off"])
    assert "SECURITY IS OFF" in c.log(0)
    s = c.conn(0).call("status").result
    assert "rootdir" not in s and "pid" not in s  # tells an unauthenticated peer nothing
    old = os.environ.get(security.ENV_SECURITY)
    os.environ[security.ENV_SECURITY] = "off"
    try:
        with Client(c.hosts_file) as fs:
            fs.mkdir("/d")
            assert fs.listdir("/") == ["d"]
    finally:
        if old is None:
            del os.environ[security.ENV_SECURITY]
        else:
            os.environ[security.ENV_SECURITY] = old
