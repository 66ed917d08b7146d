"""An attempt's files in the job directory: its own temporaries, removed only
by it, and its result or error document put in place whole."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tapd.store.jobdir import ERROR_DOCUMENT, AttemptFiles, storage_failure_message


def test_an_attempt_removes_only_its_own_temporaries(tmp_path: Path) -> None:
    """(issue 10 item 1)"""
    second, eleventh = AttemptFiles(tmp_path, 2), AttemptFiles(tmp_path, 11)
    for files in (AttemptFiles(tmp_path, 1), second, eleventh):
        files.temporary("result.csv").write_text("x\n")
    (tmp_path / "uploads").mkdir()
    (tmp_path / "result.csv").write_text("published\n")
    AttemptFiles(tmp_path, 1).discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".tmp-result.csv.attempt-11",
        ".tmp-result.csv.attempt-2",
        "result.csv",
        "uploads",
    ]


def test_a_published_result_replaces_an_earlier_attempts_files(tmp_path: Path) -> None:
    """(issue 10 item 1) Nothing of an earlier attempt stays visible beside it."""
    (tmp_path / ERROR_DOCUMENT).write_text("an earlier attempt's error")
    (tmp_path / "result.csv").write_text("old\n")
    files = AttemptFiles(tmp_path, 3)
    staged = files.temporary("result.csv")
    staged.write_text("x\n1\n")
    files.publish_result(staged, "result.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.csv"]
    assert (tmp_path / "result.csv").read_text() == "x\n1\n"


def test_a_published_error_document_replaces_an_earlier_result(tmp_path: Path) -> None:
    (tmp_path / "result.csv").write_text("old\n")
    AttemptFiles(tmp_path, 2).publish_error_document(b"<VOTABLE/>")
    assert sorted(p.name for p in tmp_path.iterdir()) == [ERROR_DOCUMENT]
    assert (tmp_path / ERROR_DOCUMENT).read_bytes() == b"<VOTABLE/>"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "the disk holding the job directory is full"),
        (errno.EDQUOT, "the disk holding the job directory is full"),
        (errno.EROFS, "the job directory is not writable"),
        (errno.EACCES, "the job directory is not writable"),
        (errno.EPERM, "the job directory is not writable"),
        (errno.EIO, "the job directory failed (Input/output error)"),
    ],
)
def test_storage_failures_are_told_in_words(code: int, words: str) -> None:
    """(issue 10 item 5)"""
    message = storage_failure_message(OSError(code, os.strerror(code), "/srv/tapd/jobs/x"))
    assert message.startswith(f"The result could not be written because {words};")
    assert "/srv" not in message
