"""tapd: a TAP job runner for astronomical archives.

A systemd-managed daemon that claims queued UWS jobs from PostgreSQL, runs each
ADQL query in a forked child under a restricted role, writes the result, and
serves the TAP/UWS HTTP endpoints.
"""

__version__ = "0.1.0"
