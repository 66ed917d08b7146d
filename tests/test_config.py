"""Configuration: defaults, the TOML file, TAPD_* variables, and errors naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tapd.config import SETTINGS, ConfigError, default_config_text, load_config


def test_defaults_apply_when_nothing_is_configured() -> None:
    config = load_config(path=None, environ={})
    assert config.schema == "tapd"
    assert config.max_jobs == 4
    assert config.jobs_path == Path("/var/lib/tapd/jobs")


def test_file_then_environment_override_defaults(tmp_path: Path) -> None:
    file = tmp_path / "tapd.toml"
    file.write_text('[database]\ndsn = "dbname=fromfile"\n[runner]\nmax_jobs = 8\n')
    config = load_config(path=file, environ={"TAPD_MAX_JOBS": "2", "TAPD_JOBS_DIR": "/srv/j"})
    assert config.dsn == "dbname=fromfile"
    assert config.max_jobs == 2
    assert config.jobs_dir == "/srv/j"


def test_tapd_config_variable_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "other.toml"
    file.write_text('[log]\nlevel = "debug"\n')
    assert load_config(environ={"TAPD_CONFIG": str(file)}).level == "debug"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[runner]\nmax_jobz = 3\n", "unknown setting 'max_jobz'"),
        ('[runner]\nmax_jobs = "four"\n', "runner.max_jobs must be int, got str 'four'"),
        ("[runner]\nmax_jobs = 0\n", "runner.max_jobs must be at least 1, got 0"),
        ("[database]\nmax_jobs = 3\n", "'max_jobs' belongs in [runner], not [database]"),
        ('[log]\nlevel = "loud"\n', "log.level must be one of debug, info, warning, error"),
        ("max_jobs = 3\n", "'max_jobs' must be a [section]"),
        ("[runner\n", "not valid TOML"),
    ],
)
def test_malformed_file_is_refused_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path=file, environ={})
    assert str(file) in str(caught.value)
    assert message in str(caught.value)


def test_unknown_or_malformed_environment_variable_is_refused() -> None:
    with pytest.raises(ConfigError, match="TAPD_MAX_JOB: unknown setting 'max_job'"):
        load_config(environ={"TAPD_MAX_JOB": "3"})
    with pytest.raises(ConfigError, match="TAPD_POLL_INTERVAL: must be float, got 'soon'"):
        load_config(environ={"TAPD_POLL_INTERVAL": "soon"})


@pytest.mark.parametrize(
    "variable",
    [
        "TAPD_CONFIG",
        "TAPD_PG_BINDIR",
        "TAPD_JOURNAL_SOCKET",
        "TAPD_ADQL_CASES",
        "TAPD_SKIP_SYSTEM_TEST",
    ],
)
def test_tapd_variables_of_the_tools_and_tests_are_not_settings(variable: str) -> None:
    """CI exports TAPD_ADQL_CASES to every process, tapd's own commands included."""
    value = "/nonexistent/none.toml" if variable != "TAPD_CONFIG" else ""
    assert load_config(environ={variable: value}).max_jobs == 4


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read configuration .*missing\.toml"):
        load_config(path=tmp_path / "missing.toml", environ={})


def test_default_file_lists_every_setting_and_parses_when_uncommented() -> None:
    text = default_config_text()
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and " = " in line else line for line in text.splitlines()
    )
    document = tomllib.loads(uncommented)
    listed = {(section, name) for section, table in document.items() for name in table}
    assert listed == {(s.section, s.name) for s in SETTINGS}
    file_values = {name: value for table in document.values() for name, value in table.items()}
    assert file_values == {s.name: s.default for s in SETTINGS}
