"""How far a running job has got, passed from the child that writes its result
to the daemon that records it.

One tiny anonymous shared memory mapping per child, made by the daemon before
the fork: the child stores the rows and bytes written so far after each batch
of rows (two integers in memory: no system call, no database write), and the
daemon reads every busy child's every ``PROGRESS_INTERVAL`` seconds and records
those that moved in one statement for all its jobs
(``JobStore.record_progress``). A read may pair one batch's rows with the
previous batch's bytes; the next read corrects it.
"""

from __future__ import annotations

import mmap
import struct

#: Seconds between the daemon's readings (and at most between two updates of
#: a job's progress in the store).
PROGRESS_INTERVAL = 2.0

_COUNTERS = struct.Struct("=qq")  # rows, bytes


class ProgressSlot:
    """The shared counters of one child."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, _COUNTERS.size)  # anonymous, shared across fork

    def report(self, rows: int, written: int) -> None:
        """In the child: the rows and bytes of the result written so far."""
        _COUNTERS.pack_into(self._memory, 0, rows, written)

    def read(self) -> tuple[int, int]:
        """In the daemon: (rows, bytes) as the child last reported them."""
        rows, written = _COUNTERS.unpack_from(self._memory, 0)
        return int(rows), int(written)

    def close(self) -> None:
        self._memory.close()
