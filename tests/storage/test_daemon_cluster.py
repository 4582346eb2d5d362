"""Daemon lifecycle on real multi-daemon clusters: hosts file, signals, restart, kill -9."""
import errno
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from gkfs_client import hostsfile, protocol
from gkfs_client.distribution import chunk_ranges

CS = protocol.DEFAULT_CHUNK_SIZE


def test_n_daemons_started_at_once_each_registered_once(cluster):
    c = cluster(n=6)
    hosts = c.hosts()
    assert [h.id for h in hosts] == list(range(6))
    assert sorted(h.pid for h in hosts) == sorted(p.pid for p in c.daemons)
    assert len({h.address for h in hosts}) == 6
    assert all(h.mount == "/gkfs" for h in hosts)


def test_sigterm_removes_only_own_line_and_exits_0(cluster):
    c = cluster(n=4)
    before = c.hosts()
    assert c.terminate(2) == 0
    after = c.hosts()
    assert after == [h for h in before if h.id != 2]
    for h in after:  # the others still answer
        conn = c.conn(h.id)
        assert conn.call("ping").result["id"] == h.id
        conn.close()


def test_sigint_also_stops_cleanly(cluster):
    c = cluster(n=2)
    c.daemons[0].send_signal(signal.SIGINT)
    assert c.daemons[0].wait(30) == 0
    assert [h.id for h in c.hosts()] == [1]


def _wait_registered(hosts_path, procs, logs, count):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if len(hostsfile.read_hosts(hosts_path)) >= count:
                return hostsfile.read_hosts(hosts_path)
        except hostsfile.HostsFileError:
            pass
        assert all(p.poll() is None for p in procs), [
            open(log).read() for log, p in zip(logs, procs) if p.poll() is not None]
        time.sleep(0.05)
    raise AssertionError(f"{count} members not registered in {hosts_path}")


def test_bare_daemons_use_documented_defaults(tmp_path):
    """`gkfs-daemon --mount /gkfs` with no other flag creates a one-node
    cluster of node.auto_processes() member processes; a second one finds no
    free slot and is refused (growing is explicit); the first comes back on
    its own cluster after a stop."""
    from gkfs_daemon.node import auto_processes
    cores = auto_processes()
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "run"))
    env.pop("LIBGKFS_HOSTS_FILE", None)
    hosts_path = tmp_path / "run" / "gkfs" / "hosts"
    logs = [tmp_path / f"daemon-{i}.log" for i in range(3)]
    # stderr to files, not pipes: an unread pipe that fills up would block a
    # daemon's logging and make its shutdown look hung.
    first = subprocess.Popen(["gkfs-daemon", "--mount", "/gkfs"], env=env, stderr=open(logs[0], "wb"))
    try:
        hosts = _wait_registered(hosts_path, [first], logs, cores)
        assert [h.id for h in hosts] == list(range(cores))
        assert all(h.address.startswith("tcp://127.0.0.1:") for h in hosts)
        assert len({h.pid for h in hosts}) == cores
        record = hostsfile.read_record(hosts_path)
        assert (record.members, record.chunk_size, record.mount) == (cores, CS, "/gkfs")
        second = subprocess.run(["gkfs-daemon", "--mount", "/gkfs"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 1 and f"all {cores} member slots" in second.stderr, second.stderr
        assert "fixed when it is created" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    assert hostsfile.read_membership(hosts_path).slots == (None,) * cores
    again = subprocess.Popen(["gkfs-daemon", "--mount", "/gkfs"], env=env, stderr=open(logs[1], "wb"))
    try:
        hosts = _wait_registered(hosts_path, [again], logs[1:], cores)
        assert hostsfile.read_record(hosts_path) == record
        assert sorted(p.name for p in (tmp_path / "run" / "gkfs").glob("daemon-*")) == ["daemon-0", "daemon-1"]
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0


def test_second_daemon_on_same_rootdir_is_refused(cluster):
    c = cluster(n=1)
    p = subprocess.run(["gkfs-daemon", "--rootdir", str(c.rootdirs[0]), "--hosts-file", str(c.hosts_file)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "in use by another running gkfs-daemon" in p.stderr
    assert [h.id for h in c.hosts()] == [0]


def test_rootdir_keeps_its_chunk_size(cluster):
    c = cluster(n=1)
    assert c.terminate(0) == 0
    p = subprocess.run(["gkfs-daemon", "--rootdir", str(c.rootdirs[0]), "--hosts-file", str(c.hosts_file),
                        "--chunk-size", "65536"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "chunk size 524288, not 65536" in p.stderr


def test_listen_port_zero_records_real_port(cluster):
    c = cluster(n=2, listen="tcp://127.0.0.1:0")
    ports = [int(h.address.rsplit(":", 1)[1]) for h in c.hosts()]
    assert all(p > 0 for p in ports) and len(set(ports)) == 2


def test_ipc_listen(cluster):
    c = cluster(n=2, listen="ipc://")
    assert all(h.address.startswith("ipc://") for h in c.hosts())
    assert c.conn_at(1).call("ping").result["id"] == 1


# ---------------------------------------------------------------------------
# Data through raw protocol: a tiny writer used by the restart and kill tests.

def create_file(c, path):
    return c.meta_conn(path).call("create", {"path": path, "mode": 0o100644}).result["stat"]


def write(c, path, key, offset, data, timeout=None):
    for index, off, length in chunk_ranges(offset, len(data), CS):
        start = index * CS + off - offset
        conn = c.chunk_conn(key, index)
        r = conn.request("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[index, off, length]]},
                         [data[start:start + length]], timeout=timeout)
        r.raise_for_status()
    c.meta_conn(path).request("update_size", {"path": path, "offset": offset, "count": len(data)},
                              timeout=timeout).raise_for_status()


def read(c, path):
    st = c.meta_conn(path).call("stat", {"path": path}).result["stat"]
    out = bytearray()
    for index, off, length in chunk_ranges(0, st["size"], CS):
        r = c.chunk_conn(st["data_key"], index).call(
            "read_chunks", {"data_key": st["data_key"], "chunk_size": CS, "chunks": [[index, off, length]],
                            "file_size": st["size"]})
        assert r.result["lengths"] == [length]
        out += r.data[0]
    return bytes(out)


def test_restart_keeps_data(cluster):
    c = cluster(n=3)
    files = {}
    for i in range(12):
        path = f"/dir{i % 3}/file{i}"
        if i < 3:
            c.meta_conn(f"/dir{i}").call("create", {"path": f"/dir{i}", "mode": 0o040755})
        st = create_file(c, path)
        data = os.urandom(1000 + i * 150_000)
        write(c, path, st["data_key"], 0, data)
        files[path] = data
    assert all(code == 0 for code in c.stop())
    # The record stays (membership is fixed); every member entry is gone.
    assert hostsfile.read_membership(c.hosts_file).slots == (None, None, None)
    for i in range(3):
        c.restart(i)
    for path, data in files.items():
        assert read(c, path) == data, path
    for i in range(3):
        st = c.meta_conn(f"/dir{i}").call("stat", {"path": f"/dir{i}"}).result["stat"]
        assert st["mode"] == 0o040755


def test_kill_9_during_write_stream_loses_no_acknowledged_write(cluster):
    c = cluster(n=3)
    path = "/stream"
    key = create_file(c, path)["data_key"]
    record = 100_003  # not a divisor of the chunk size: records straddle chunk boundaries
    acked = []  # (offset, data) pairs whose every reply came back ok
    stop = threading.Event()
    failure = []

    def writer():
        offset = 0
        i = 0
        while not stop.is_set():
            data = (f"{i:08d}".encode() * (record // 8 + 1))[:record]
            try:
                write(c, path, key, offset, data, timeout=3)
            except (TimeoutError, OSError) as exc:
                failure.append(exc)
                return
            acked.append((offset, data))
            offset += record
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.5)
    victim = 1
    c.kill(victim)
    t.join(30)
    stop.set()
    assert failure, "the writer should have hit the killed daemon"
    assert len(acked) > 5, len(acked)
    c.restart(victim)
    content = read(c, path)
    end = acked[-1][0] + record
    assert len(content) >= end
    for offset, data in acked:
        assert content[offset:offset + record] == data, offset


def test_fsync_reaches_every_daemon(cluster):
    c = cluster(n=3)
    key = create_file(c, "/f")["data_key"]
    write(c, "/f", key, 0, b"z" * (3 * CS))
    for i in range(3):
        assert c.conn_at(i).call("fsync", {"data_key": key}).result == {}
        assert c.conn_at(i).call("fsync").result == {}


def test_sigterm_lets_in_flight_writes_finish(cluster, raw):
    c = cluster(n=1)
    key = create_file(c, "/inflight")["data_key"]
    conn = raw(c.address(0), timeout=30)
    n, per = 24, 8  # 24 pipelined writes of 4 MiB each
    blobs = [bytes([i]) * CS for i in range(n)]
    for i in range(n):
        conn.send_frames(conn.encode(
            "write_chunks", {"data_key": key, "chunk_size": CS,
                             "chunks": [[i * per + k, 0, CS] for k in range(per)]}, [blobs[i]] * per,
            req_id=1000 + i))
    first = conn.recv_reply()
    assert first.ok
    c.daemons[0].send_signal(signal.SIGTERM)
    replies = [first]
    while True:
        try:
            replies.append(conn.recv_reply(timeout=5))
        except TimeoutError:
            break
    assert c.daemons[0].wait(30) == 0
    # requests taken in before the signal finish ok; later ones are refused, not left hanging
    assert all(r.ok or r.status == errno.ESHUTDOWN for r in replies), [r for r in replies if not r.ok]
    acked = [r for r in replies if r.ok]
    # Every write the daemon executed (its debug log says so) was answered:
    # the replies of in-flight work were flushed before it exited.
    done = {int(m) for m in re.findall(r"op write_chunks \(id (\d+)\) ok", c.log(0))}
    assert done == {r.req_id for r in acked}, (sorted(done), sorted(r.req_id for r in acked))
    print(f"{len(acked)} of {n} writes done, {len(replies) - len(acked)} refused around SIGTERM")
    c.restart(0)
    conn2 = c.conn_at(0)
    for r in acked:
        i = r.req_id - 1000
        got = conn2.call("read_chunks", {"data_key": key, "chunk_size": CS,
                                         "chunks": [[i * per + k, 0, CS] for k in range(per)]})
        assert all(bytes(d) == blobs[i] for d in got.data), i


def test_taken_id_is_refused_with_clear_error(cluster, tmp_path):
    c = cluster(n=1)
    p = subprocess.run(["gkfs-daemon", "--rootdir", str(tmp_path / "other"), "--hosts-file", str(c.hosts_file),
                        "--id", "0"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "id 0 is already registered" in p.stderr
    assert [h.pid for h in c.hosts()] == [c.daemons[0].pid]


def test_help_explains_flags():
    p = subprocess.run(["gkfs-daemon", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    for flag in ("--mount", "--rootdir", "--listen", "--hosts-file", "--config", "--chunk-size", "--log-level",
                 "--id"):
        assert flag in p.stdout


def test_pipelined_requests_beyond_hwm_all_answered(cluster, raw):
    c = cluster(n=1)
    conn = raw(c.address(0))
    key = create_file(c, "/p")["data_key"]
    conn.call("write_chunks", {"data_key": key, "chunk_size": CS, "chunks": [[0, 0, 16384]]}, [b"p" * 16384])
    n = 4000  # more than ZeroMQ's default high-water mark of 1000, 16 KiB replies
    args = {"data_key": key, "chunk_size": CS, "chunks": [[0, 0, 16384]]}
    for i in range(n):
        conn.send_frames(conn.encode("read_chunks", args, req_id=i + 1))
    time.sleep(2)  # let replies pile up unread
    ids = set()
    for _ in range(n):
        ids.add(conn.recv_reply(timeout=10).req_id)
    assert ids == set(range(1, n + 1))
