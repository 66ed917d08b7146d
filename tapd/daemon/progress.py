"""How far a running job has got, passed from the child that writes its result
to the daemon that records it.

One tiny anonymous shared memory mapping per child, made by the daemon before
the fork: the child stores the rows and bytes written so far after each batch
of rows (two integers in memory: no system call, no database write), and the
daemon reads every busy child's every ``PROGRESS_INTERVAL`` seconds and records
those that moved in one statement for all its jobs
(``JobStore.record_progress``). Before its query runs, the child also stores
the rows PostgreSQL's plan expects (``expect``). A read may pair one batch's rows with the
previous batch's bytes; the next read corrects it.
"""

from __future__ import annotations

import mmap
import struct

#: Seconds between the daemon's readings (and at most between two updates of
#: a job's progress in the store).
PROGRESS_INTERVAL = 2.0

_COUNTERS = struct.Struct("=qq")  # rows, bytes
_EXPECTED = struct.Struct("=q")  # rows PostgreSQL expects; -1: not known
_EXPECTED_AT = _COUNTERS.size

#: (rows, bytes written so far, rows expected or None)
Reading = tuple[int, int, int | None]


class ProgressSlot:
    """The shared counters of one child."""

    def __init__(self) -> None:
        # anonymous, shared across fork
        self._memory = mmap.mmap(-1, _COUNTERS.size + _EXPECTED.size)
        _EXPECTED.pack_into(self._memory, _EXPECTED_AT, -1)

    def report(self, rows: int, written: int) -> None:
        """In the child: the rows and bytes of the result written so far."""
        _COUNTERS.pack_into(self._memory, 0, rows, written)

    def expect(self, rows: int) -> None:
        """In the child: the rows PostgreSQL expects the query to return."""
        _EXPECTED.pack_into(self._memory, _EXPECTED_AT, rows)

    def read(self) -> Reading:
        """In the daemon: (rows, bytes, expected rows or None) as the child last
        reported them."""
        rows, written = _COUNTERS.unpack_from(self._memory, 0)
        (expected,) = _EXPECTED.unpack_from(self._memory, _EXPECTED_AT)
        return int(rows), int(written), (int(expected) if expected >= 0 else None)

    def close(self) -> None:
        self._memory.close()
