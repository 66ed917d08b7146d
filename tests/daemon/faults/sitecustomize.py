"""Fault injection for daemon tests, loaded at start-up by daemons whose
PYTHONPATH names this directory (``tests/daemon/test_signals_in_the_child.py``).

With ``TAPD_TEST_SIGNAL_AFTER_RESULT=<signal name>`` in the environment, a
process that renames a file into place as ``result.*`` sends itself that
signal right after the rename: the moment between a result being written and
its job's ending being recorded, which a real signal hits only by chance.
"""

from __future__ import annotations

import os
import signal
from typing import Any

_SIGNAL = os.environ.get("TAPD_TEST_SIGNAL_AFTER_RESULT")
_replace = os.replace


def _replace_then_signal(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    _replace(src, dst, *args, **kwargs)
    if _SIGNAL and os.path.basename(os.fsdecode(dst)).startswith("result."):
        os.kill(os.getpid(), signal.Signals[_SIGNAL])


os.replace = _replace_then_signal
