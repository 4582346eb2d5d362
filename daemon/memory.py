"""The daemon's heap: data buffers from malloc's arenas, given back when idle.

A 1 MiB write or read passes through several buffers of about a chunk each:
libzmq's CURVE decryption and encryption buffers, the frames libzmq
receives into, the buffers chunks are pread into. Served by mmap (glibc's
default above 128 KiB, and what the daemon used to force above 256 KiB so
that memory went back to the OS at once), every one of them is fresh zero
pages that fault in one at a time: on this VM about as long again as the
transfer itself, which kept 1 MiB reads at ~0.45x and writes at ~0.55x of a
bare pyzmq echo. From the arenas, the pages of the last request are used
again.

What the arenas keep once freed is given back when the daemon falls idle
(`IdleTrim`, a thread that sleeps while nothing happens): after data moved,
and then none for IDLE_S, malloc_trim(0) returns every free page of every
arena to the OS, and again TRIM_AGAIN_S later (a reply libzmq was still
sending to a slow reader is freed only once it is out). Buffers above the
mmap threshold (a hostile 64 MiB frame) still come from mmap and go back
the moment they are freed.
"""
from __future__ import annotations

import ctypes
import logging
import threading
import time

log = logging.getLogger("gkfs_daemon.memory")

MIB = 1 << 20
MMAP_THRESHOLD_MIN = 4 * MIB  # at least: a chunk's buffers and their CURVE copies
MMAP_THRESHOLD_MAX = 32 * MIB  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
# Free memory at an arena's top beyond mmap_threshold() is returned at once
# (M_TRIM_THRESHOLD); below it, kept for the next request. At 1 MiB the main
# arena (the receiving thread's, which serves 1 MiB data requests itself)
# gave back the two 512 KiB buffers of every read at once and faulted fresh
# pages in for the next: ~670 page faults per MiB read.
IDLE_S = 0.2  # no data moved for this long after some did: trim
TRIM_AGAIN_S = (1.0, 4.0)  # and again after these pauses, if still no data moved
NOTE_MIN = 64 * 1024  # smaller requests allocate nothing worth trimming
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc():
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # glibc only
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def mmap_threshold(chunk_size: int) -> int:
    """Buffers up to this size come from the arenas: a chunk's, with room."""
    return min(MMAP_THRESHOLD_MAX, max(MMAP_THRESHOLD_MIN, 2 * chunk_size))


def configure(chunk_size: int) -> bool:
    """Fix malloc's thresholds for this process (glibc; False: not glibc,
    its defaults stay). A fixed M_MMAP_THRESHOLD also turns off glibc's
    dynamic threshold, which would otherwise follow the largest buffer
    ever freed (up to 32 MiB) and keep such buffers in the heap for good."""
    if _LIBC is None:
        return False
    ok = _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold(chunk_size)) == 1
    ok = _LIBC.mallopt(_M_TRIM_THRESHOLD, mmap_threshold(chunk_size)) == 1 and ok
    return ok


def trim() -> None:
    """Return every free page of every arena to the OS."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class IdleTrim:
    """Trims once the daemon has moved data and then none for IDLE_S.

    ``note(nbytes)`` is called by every data request (any thread); the
    trimming thread starts with the first and sleeps on an event while
    nothing happens, so an idle daemon wakes for nothing."""

    def __init__(self, idle_s: float = IDLE_S, again_s: tuple[float, ...] = TRIM_AGAIN_S):
        self.idle_s = idle_s
        self.again_s = again_s
        self.moved = 0  # bytes of data requests so far (only ever grows)
        self.trims = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def note(self, nbytes: int) -> None:
        if nbytes < NOTE_MIN or _LIBC is None:
            return
        self.moved += nbytes
        self._wake.set()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="idle-trim", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            while True:  # until a whole idle_s passes without data moving
                self._wake.clear()
                last = self.moved
                time.sleep(self.idle_s)
                if self.moved == last:
                    break
            self._trim()
            for pause in self.again_s:
                if self._wake.wait(pause):
                    break  # data moves again: start over
                self._trim()

    def _trim(self) -> None:
        started = time.perf_counter()
        trim()
        self.trims += 1
        log.debug("idle: returned free heap memory to the OS in %.1f ms", (time.perf_counter() - started) * 1e3)
