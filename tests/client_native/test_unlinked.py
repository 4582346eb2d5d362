"""Open-unlinked files (issue 12): programs/unlinked.c unlinks and
renames over files it (or another process) has open and keeps using them;
after the last close the data is reclaimed on every daemon."""
from __future__ import annotations

import json
import subprocess


def _bytes_stored(gk_cluster) -> int:
    cp = subprocess.run(["gkfs-ctl", "--hosts-file", str(gk_cluster.hosts_file), "status", "--json"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    data = json.loads(cp.stdout)
    daemons = data["daemons"] if isinstance(data, dict) else data
    return sum(d["bytes_stored"] for d in daemons)


def test_unlinked_files_stay_until_the_last_close(gk_cluster, rv_program, run_rv):
    gk_cluster.client.mkdir("/unlinked")
    before = _bytes_stored(gk_cluster)
    cp = run_rv([rv_program("unlinked"), f"{gk_cluster.mount}/unlinked"])
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0 and out.rstrip().endswith("done"), out + cp.stderr.decode(errors="replace")
    assert gk_cluster.client.listdir("/unlinked") == []
    # every file's chunks are gone again: nothing leaked, nothing dropped early
    assert _bytes_stored(gk_cluster) == before
