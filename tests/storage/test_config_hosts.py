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


@pytest.mark.parametrize("text,match", [
    ("0 tcp://a:1 1 h /g\n0 tcp://b:1 2 h /g\n", "duplicate id"),
    ("x tcp://a:1 1 h /g\n", "integers"),
    ("# only a comment\n", "lists no daemon"),
    ("-1 tcp://a:1 1 h /g\n", "negative"),
])
def test_malformed_hosts_file(tmp_path, text, match):
    (tmp_path / "hosts").write_text(text)
    with pytest.raises(hostsfile.HostsFileError, match=match):
        hostsfile.read_hosts(tmp_path / "hosts")


def test_hosts_sorted_by_id(tmp_path):
    (tmp_path / "hosts").write_text("5 tcp://e:1 1 h /g\n\n# c\n2 tcp://b:1 1 h /g\n10 tcp://z:1 1 h /g\n")
    assert [h.id for h in hostsfile.read_hosts(tmp_path / "hosts")] == [2, 5, 10]


def _register_many(path, base, count):
    for i in range(count):
        hostsfile.register(path, f"tcp://127.0.0.1:{base + i}", pid=base + i, hostname="other")


def test_concurrent_registration_is_exactly_once(tmp_path):
    path = tmp_path / "hosts"
    procs = [multiprocessing.Process(target=_register_many, args=(path, 1000 * (k + 1), 25)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    hosts = hostsfile.read_hosts(path)
    assert sorted(h.id for h in hosts) == list(range(100))
    assert len({h.address for h in hosts}) == 100


def test_unregister_removes_only_own_line(tmp_path):
    path = tmp_path / "hosts"
    a = hostsfile.register(path, "tcp://127.0.0.1:1", pid=111, hostname="h1")
    b = hostsfile.register(path, "tcp://127.0.0.1:2", pid=222, hostname="h1")
    assert not hostsfile.unregister(path, a.id, pid=999)  # someone else's pid: untouched
    assert hostsfile.unregister(path, a.id, pid=111)
    assert [h.address for h in hostsfile.read_hosts(path)] == ["tcp://127.0.0.1:2"]
    assert hostsfile.unregister(path, b.id, pid=222)
    assert not path.exists()


def test_live_id_is_not_taken_over(tmp_path):
    path = tmp_path / "hosts"
    hostsfile.register(path, "tcp://127.0.0.1:1", pid=os.getpid(), host_id=3)
    with pytest.raises(hostsfile.HostsFileError, match="already registered"):
        hostsfile.register(path, "tcp://127.0.0.1:2", pid=os.getppid(), host_id=3)


def test_stale_line_is_replaced(tmp_path):
    path = tmp_path / "hosts"
    dead = multiprocessing.Process(target=int)
    dead.start()
    dead.join()
    hostsfile.register(path, "tcp://127.0.0.1:1", pid=dead.pid, host_id=0)
    hostsfile.register(path, "tcp://127.0.0.1:2", host_id=0)
    hosts = hostsfile.read_hosts(path)
    assert [(h.id, h.address, h.pid) for h in hosts] == [(0, "tcp://127.0.0.1:2", os.getpid())]
