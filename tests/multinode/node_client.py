"""A Python gkfs client run INSIDE a node namespace by the multi-host tests
(python node_client.py HOSTS_FILE COMMAND ...). Prints one JSON line.

  write PATH SIZE SEED     write SIZE pattern bytes, fsync, close
  verify PATH SIZE SEED    read it back and compare
  stream PATH BLOCK SEED   append BLOCK-sized blocks until an error; after
                           each acknowledged write prints {"acked": bytes}
                           (flushed), and at the error {"error": errno, ...}
  paths PATH 0 0           stat PATH; print which members this client
                           reaches over the local stream ({"stream": [bool]})
"""
from __future__ import annotations

import json
import os
import random
import sys
import time

from gkfs_client.client import Client


def pattern(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def out(**kw) -> None:
    print(json.dumps(kw), flush=True)


def main() -> int:
    hosts, cmd, path = sys.argv[1], sys.argv[2], sys.argv[3]
    size, seed = int(sys.argv[4]), int(sys.argv[5])
    with Client(hosts) as fs:
        if cmd == "write":
            fd = fs.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            fs.write(fd, pattern(size, seed))
            fs.fsync(fd)
            fs.close(fd)
            out(ok=True, size=fs.stat(path).st_size)
        elif cmd == "verify":
            data = fs.read_file(path)
            out(ok=data == pattern(size, seed), size=len(data))
        elif cmd == "stream":
            block = pattern(size, seed)
            fd = fs.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            acked = 0
            while True:
                t0 = time.monotonic()
                try:
                    fs.pwrite(fd, block, acked)
                except OSError as exc:
                    out(error=exc.errno, message=str(exc), seconds=round(time.monotonic() - t0, 2), acked=acked)
                    return 0
                acked += len(block)
                out(acked=acked)
                time.sleep(0.05)
        elif cmd == "paths":
            fs.stat(path)
            t = fs._rpc.transport
            out(stream=[t.uses_stream(i) for i in range(fs.n)], hostname=os.uname().nodename)
        else:
            out(error=f"unknown command {cmd}")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
