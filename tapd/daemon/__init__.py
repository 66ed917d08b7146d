"""The runner daemon (``tapd run``): claims queued jobs, forks a child per job,
reaps, reconciles, talks to systemd. See ``tapd.daemon.loop``."""

from tapd.daemon.loop import RunnerDaemon, run_daemon

__all__ = ["RunnerDaemon", "run_daemon"]
