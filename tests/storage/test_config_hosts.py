"""Config precedence and the hosts file library (no daemon needed)."""
import multiprocessing
import os

import pytest

from gkfs_client import config, hostsfile


def test_embedded_defaults_equal_shipped_file():
    assert config.daemon_config(config.default_config_path()) == config.DaemonConfig()


def test_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[daemon]\nchunk_size = 65536\nworkers = 2\nlog_level = "debug"\n')
    cfg = config.daemon_config(f, {"workers": 7, "log_level": None})
    assert (cfg.chunk_size, cfg.workers, cfg.log_level) == (65536, 7, "debug")


@pytest.mark.parametrize("text,match", [
    ("[daemon]\nchunk_sise = 4096\n", "unknown key daemon.chunk_sise"),
    ("[daemon]\nchunk_size = 'big'\n", "must be int"),
    ("[daemon]\nchunk_size = 1000\n", "power of two"),
    ("[demon]\n", "unknown table"),
    ("[daemon\n", "invalid TOML"),
    ("[daemon]\nlisten = 'http://x'\n", "listen must be"),
])
def test_bad_config(tmp_path, text, match):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(config.ConfigError, match=match):
        config.daemon_config(f)


def test_missing_config_file(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.daemon_config(tmp_path / "nope.toml")


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.delenv("LIBGKFS_HOSTS_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert hostsfile.resolve_hosts_file() == tmp_path / "xdg" / "gkfs" / "hosts"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert str(hostsfile.resolve_hosts_file()) == f"/tmp/gkfs-{os.getuid()}/hosts"
    monkeypatch.setenv("LIBGKFS_HOSTS_FILE", str(tmp_path / "env"))
    assert hostsfile.resolve_hosts_file() == tmp_path / "env"
    assert hostsfile.resolve_hosts_file(tmp_path / "x") == tmp_path / "x"


def test_missing_hosts_file_error(tmp_path):
    with pytest.raises(hostsfile.HostsFileMissing) as info:
        hostsfile.read_hosts(tmp_path / "hosts")
    msg = str(info.value)
    assert str(tmp_path / "hosts") in msg and "cluster start" in msg
    assert isinstance(info.value, FileNotFoundError)


UUID = "0f0e0d0c-0b0a-4908-8706-050403020100"
RECORD = f"cluster {UUID} 3 65536 /g\n"


@pytest.mark.parametrize("text,match", [
    (RECORD + "0 tcp://a:1 1 h /g\n0 tcp://b:1 2 h /g\n", "duplicate id"),
    (RECORD + "x tcp://a:1 1 h /g\n", "integers"),
    ("# only a comment\n", "no cluster record"),
    ("0 tcp://a:1 1 h /g\n", "no cluster record"),  # v1: placement would follow the lines listed
    (RECORD + "-1 tcp://a:1 1 h /g\n", "negative"),
    (RECORD + "3 tcp://a:1 1 h /g\n", "outside the cluster's 3 members"),
    (RECORD + RECORD, "second cluster record"),
    (f"cluster {UUID} 0 65536 /g\n", "members must be"),
    (f"cluster {UUID} 2 1000 /g\n", "power of two"),
    ("cluster not-a-uuid 2 65536 /g\n", "uuid"),
    (RECORD, "no member .* is registered"),
])
def test_malformed_hosts_file(tmp_path, text, match):
    (tmp_path / "hosts").write_text(text)
    with pytest.raises(hostsfile.HostsFileError, match=match):
        hostsfile.read_hosts(tmp_path / "hosts")


def test_slots_follow_ids_not_lines(tmp_path):
    """Placement slots are member ids; a missing member leaves a hole, it
    never shifts the others (the silent-wrong-data defect of issue 7)."""
    (tmp_path / "hosts").write_text(RECORD + "2 tcp://c:1 1 h /g\n\n# c\n0 tcp://a:1 1 h /g\n")
    m = hostsfile.read_membership(tmp_path / "hosts")
    assert m.members == 3 and m.record.chunk_size == 65536 and m.record.uuid == UUID
    assert [h.address if h else None for h in m.slots] == ["tcp://a:1", None, "tcp://c:1"]
    # A member's own entry file wins over an inline line.
    (tmp_path / "hosts.d").mkdir()
    (tmp_path / "hosts.d" / "2").write_text("2 tcp://new:2 5 h /g\n")
    assert hostsfile.read_membership(tmp_path / "hosts").slots[2].address == "tcp://new:2"
    (tmp_path / "hosts.d" / "1").write_text("0 tcp://x:2 5 h /g\n")
    with pytest.raises(hostsfile.HostsFileError, match="names id 0, not 1"):
        hostsfile.read_membership(tmp_path / "hosts")


def _create(path, k, out):
    out.put(hostsfile.create_cluster(path, 4, 65536, "/g"))


def test_cluster_record_is_created_exactly_once(tmp_path):
    path = tmp_path / "hosts"
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_create, args=(path, k, q)) for k in range(6)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(created for _, created in got) == 1
    assert len({rec for rec, _ in got}) == 1
    assert hostsfile.read_record(path) == got[0][0]
    assert list(tmp_path.iterdir()) == [path]  # no temp files left


def _register_many(path, base, count):
    for i in range(count):
        hostsfile.register(path, f"tcp://127.0.0.1:{base + i}", pid=base + i, hostname="other")


def test_concurrent_registration_is_exactly_once(tmp_path):
    path = tmp_path / "hosts"
    hostsfile.create_cluster(path, 100, 65536)
    procs = [multiprocessing.Process(target=_register_many, args=(path, 1000 * (k + 1), 25)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    hosts = hostsfile.read_hosts(path)
    assert sorted(h.id for h in hosts) == list(range(100))
    assert len({h.address for h in hosts}) == 100
    # Full: the 101st is an explicit error, never a silent growth.
    with pytest.raises(hostsfile.HostsFileError, match="all 100 member slots"):
        hostsfile.register(path, "tcp://127.0.0.1:1", pid=1, hostname="elsewhere")


def test_unregister_removes_only_own_entry(tmp_path):
    path = tmp_path / "hosts"
    hostsfile.create_cluster(path, 2, 65536)
    a = hostsfile.register(path, "tcp://127.0.0.1:1", pid=111, hostname="h1")
    b = hostsfile.register(path, "tcp://127.0.0.1:2", pid=222, hostname="h1")
    assert not hostsfile.unregister(path, a.id, pid=999)  # someone else's pid: untouched
    assert hostsfile.unregister(path, a.id, pid=111)
    assert [h.address for h in hostsfile.read_hosts(path)] == ["tcp://127.0.0.1:2"]
    assert hostsfile.unregister(path, b.id, pid=222)
    # The record stays: the cluster keeps its membership while nobody runs.
    assert hostsfile.read_membership(path).slots == (None, None)
    with pytest.raises(hostsfile.NoMemberRunning):
        hostsfile.read_hosts(path)


def test_live_id_is_not_taken_over(tmp_path):
    path = tmp_path / "hosts"
    hostsfile.create_cluster(path, 4, 65536)
    hostsfile.register(path, "tcp://127.0.0.1:1", pid=os.getpid(), host_id=3)
    with pytest.raises(hostsfile.HostsFileError, match="already registered"):
        hostsfile.register(path, "tcp://127.0.0.1:2", pid=os.getppid(), host_id=3)
    with pytest.raises(hostsfile.HostsFileError, match="outside the 4-member cluster"):
        hostsfile.register(path, "tcp://127.0.0.1:2", host_id=4)


def test_stale_entry_is_replaced(tmp_path):
    path = tmp_path / "hosts"
    hostsfile.create_cluster(path, 1, 65536)
    dead = multiprocessing.Process(target=int)
    dead.start()
    dead.join()
    hostsfile.register(path, "tcp://127.0.0.1:1", pid=dead.pid, host_id=0)
    hostsfile.register(path, "tcp://127.0.0.1:2", host_id=0)
    hosts = hostsfile.read_hosts(path)
    assert [(h.id, h.address, h.pid) for h in hosts] == [(0, "tcp://127.0.0.1:2", os.getpid())]


def test_zombie_pid_counts_as_dead():
    """A daemon killed with -9 is a zombie until reaped: its restart must not
    be refused meanwhile (issue 7)."""
    import subprocess
    import time
    p = subprocess.Popen(["sleep", "60"])
    try:
        assert hostsfile.pid_alive(p.pid)
        os.kill(p.pid, 9)
        deadline = time.monotonic() + 10
        while hostsfile.pid_alive(p.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Not reaped yet (no wait()): still a zombie, yet dead for us.
        assert os.path.exists(f"/proc/{p.pid}")
        assert not hostsfile.pid_alive(p.pid)
    finally:
        p.wait()
