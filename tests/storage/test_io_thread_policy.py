"""libzmq's I/O threads run under SCHED_BATCH (issue 9, CPU per metadata
call): a send wakes the I/O thread, and a normal thread woken on the
sender's core preempts it before it reaches its wait, two context switches
more per message. The daemon's and the client's own contexts are set so;
the Python threads keep their policy; a context passed in is left alone; a
client created from a real-time thread (whose priority SCHED_BATCH would
refuse, which makes libzmq abort) sets nothing and works."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import zmq

from gkfs_client.client import Client


def _policies(pid: int) -> dict[str, set[int]]:
    """Thread name -> scheduling policies of the threads of that name."""
    out: dict[str, set[int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except FileNotFoundError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        policy = int(st[st.rindex(")") + 2:].split()[38])
        out.setdefault(name, set()).add(policy)
    return out


def _client_script(hosts: str, body: str) -> dict:
    code = textwrap.dedent(f"""
        import json, os, sys
        from gkfs_client.client import Client
        {body}
        with Client(hosts_file={hosts!r}) as c:
            c.mkdir("/d" + str(os.getpid()))
            st = c.stat("/d" + str(os.getpid()))
            pol = {{}}
            for tid in os.listdir(f"/proc/{{os.getpid()}}/task"):
                s = open(f"/proc/{{os.getpid()}}/task/{{tid}}/stat").read()
                name = s[s.index("(") + 1:s.rindex(")")]
                pol.setdefault(name, []).append(int(s[s.rindex(")") + 2:].split()[38]))
            print(json.dumps({{"policies": pol, "dir": st.st_mode >> 12}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or not hasattr(zmq, "THREAD_SCHED_POLICY"),
                    reason="no SCHED_BATCH here")
def test_daemon_and_client_io_threads_are_batch(cluster):
    c = cluster(n=1)
    gk = Client(hosts_file=c.hosts_file)
    gk.mkdir("/d")
    assert gk.stat("/d").st_mode >> 12 == 0o04
    pol = _policies(c.daemons[0].pid)
    io = {p for name, ps in pol.items() if name.startswith("ZMQbg/IO") for p in ps}
    assert io == {os.SCHED_BATCH}, pol
    # the receiving thread, the workers...: untouched
    rest = {p for name, ps in pol.items() if not name.startswith("ZMQbg/") for p in ps}
    assert rest == {os.SCHED_OTHER}, pol
    gk.disconnect()

    # A client in a process of its own (its shared context not started yet).
    got = _client_script(str(c.hosts_file), "")
    assert got["dir"] == 0o04
    io = {p for name, ps in got["policies"].items() if name.startswith("ZMQbg/IO") for p in ps}
    assert io == {os.SCHED_BATCH}, got
    rest = {p for name, ps in got["policies"].items() if not name.startswith("ZMQbg/") for p in ps}
    assert rest == {os.SCHED_OTHER}, got


def test_a_context_passed_in_is_left_alone():
    code = textwrap.dedent("""
        import os, zmq
        from gkfs_client import transport
        ctx = zmq.Context()
        t = transport.ZmqTransport(["tcp://127.0.0.1:9"], context=ctx)
        import time
        pol, deadline = set(), time.monotonic() + 10
        while not pol and time.monotonic() < deadline:  # the thread names itself once running
            for tid in os.listdir(f"/proc/{os.getpid()}/task"):
                s = open(f"/proc/{os.getpid()}/task/{tid}/stat").read()
                if s[s.index("(") + 1:s.rindex(")")].startswith("ZMQbg/IO"):
                    pol.add(int(s[s.rindex(")") + 2:].split()[38]))
            time.sleep(0.01)
        t.close()
        print(sorted(pol))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"[{os.SCHED_OTHER}]"], out.stdout


def test_a_real_time_creator_sets_nothing_and_works(cluster):
    """libzmq gives its threads the creating thread's parameters with the
    policy replaced; SCHED_BATCH with a real-time priority is EINVAL and
    libzmq aborts on it. So nothing is set from a real-time thread."""
    try:
        probe = subprocess.run([sys.executable, "-c",
                                "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"],
                               capture_output=True, timeout=30)
    except OSError:
        pytest.skip("cannot start a probe")
    if probe.returncode != 0:
        pytest.skip("no permission for SCHED_FIFO here")
    c = cluster(n=1)
    got = _client_script(str(c.hosts_file),
                         "os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))")
    assert got["dir"] == 0o04
    io = {p for name, ps in got["policies"].items() if name.startswith("ZMQbg/IO") for p in ps}
    assert io == {os.SCHED_FIFO}, got   # inherited, not replaced
