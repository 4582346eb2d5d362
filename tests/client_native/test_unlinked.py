"""Open-unlinked files (issue 12): programs/unlinked.c unlinks and
renames over files it (or another process) has open and keeps using them;
after the last close the data is reclaimed on every daemon."""
from __future__ import annotations

import json
import subprocess
import time

from gkfs_client.distribution import metadata_owner


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
    c = gk_cluster.client
    assert c.listdir("/unlinked") == []
    # The process that unlinked a file reclaims it at its own last close; a
    # file another process held is reclaimed with its daemon's next remove,
    # rename or release reply (protocol 4.6): one remove per daemon.
    n = c.n
    pokes = {}
    for i in range(200):
        p = f"/unlinked/poke{i}"
        pokes.setdefault(metadata_owner(p, n), p)
    assert len(pokes) == n
    # every file's chunks are gone again: nothing leaked, nothing dropped
    # early (a holder's exit is noticed within the daemons' 0.25 s probe)
    deadline = time.monotonic() + 10
    while True:
        for p in pokes.values():
            c.write_file(p, b"")
            c.unlink(p)
        if _bytes_stored(gk_cluster) == before or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert _bytes_stored(gk_cluster) == before, [(lambda r: (r["open_files"], r["orphans"], r["bytes_stored"]))(c._one(i, "status", {}).result) for i in range(n)]
