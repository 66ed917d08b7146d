"""Example queries: read from the operator's TOML file, checked against the catalog.

The file (``[service] examples``) holds ``[[example]]`` tables with ``name``,
``description``, ``query`` and, for a query that joins a table of the user's,
``upload = {table = "NAME", file = "FILE.vot"}`` (a VOTable beside the file).
``tapd serve`` checks every example against the published tables when it
starts (``check_examples``); the ones that pass are served as the DALI
examples document and offered by the query form, the others are logged.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tapd.catalog import Catalog, CatalogTable
from tapd.errors import TapdError

DATA_DIR = Path(__file__).parent / "data"
#: Used when ``[service] examples`` is empty: queries every TAP service can answer.
DEFAULT_EXAMPLES = DATA_DIR / "tap_schema_examples.toml"
#: The demo catalog's examples (``tapd demo``).
DEMO_EXAMPLES = DATA_DIR / "demo_examples.toml"

_KEYS = frozenset({"id", "name", "description", "query", "upload"})
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ExamplesError(TapdError):
    """The examples file cannot be used (the message names the file and the entry)."""


@dataclass(frozen=True)
class ExampleUpload:
    """A table the example's query reads as ``TAP_UPLOAD.<table>``: a VOTable file."""

    table: str
    path: Path


@dataclass(frozen=True)
class Example:
    """One example query, as the DALI examples document and the query form show it."""

    id: str  # an XML name, unique in the file: the anchor in /examples
    name: str
    description: str
    query: str
    upload: ExampleUpload | None = None


@dataclass(frozen=True)
class Rejected:
    """An example that did not pass the check, and why."""

    example: Example
    reason: str


def examples_file(setting: str) -> Path:
    """The file named by ``[service] examples``, or the built-in TAP_SCHEMA examples."""
    return Path(setting) if setting else DEFAULT_EXAMPLES


def example_id(name: str) -> str:
    """An anchor made from a name: ``Cone search (1°)`` -> ``cone-search-1``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug if slug[:1].isalpha() else f"example-{slug}".rstrip("-")


def read_examples(path: Path) -> tuple[Example, ...]:
    """The examples of a TOML file; ``ExamplesError`` when it cannot be read or is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ExamplesError(f"cannot read the examples file {path}: {reason}") from None
    return parse_examples(text, str(path), path.parent)


def parse_examples(text: str, where: str, base_dir: Path) -> tuple[Example, ...]:
    """The ``[[example]]`` entries of ``text``; upload files are relative to ``base_dir``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExamplesError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"example"})
    if unknown:
        raise ExamplesError(f"{where}: unknown table {unknown[0]!r}: write [[example]] entries")
    entries = document.get("example", [])
    if not isinstance(entries, list):
        raise ExamplesError(f"{where}: 'example' must be an array of tables: write [[example]]")
    examples = [_example(e, f"{where}: example {n}", base_dir) for n, e in enumerate(entries, 1)]
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise ExamplesError(f"{where}: two examples have the id {example.id!r}: set 'id'")
        seen.add(example.id)
    return tuple(examples)


def _example(entry: Any, where: str, base_dir: Path) -> Example:
    if not isinstance(entry, dict):
        raise ExamplesError(f"{where} must be a table with name and query")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ExamplesError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    name = _text(entry, "name", where, required=True)
    where = f"{where} ({name!r})"
    query = _text(entry, "query", where, required=True).strip()
    identifier = _text(entry, "id", where) or example_id(name)
    if not _ID.match(identifier):
        raise ExamplesError(f"{where}: id {identifier!r} is not an XML name (letters, digits, -_.)")
    upload = entry.get("upload")
    return Example(
        id=identifier,
        name=name,
        description=" ".join(_text(entry, "description", where).split()),
        query=query,
        upload=_upload(upload, where, base_dir) if upload is not None else None,
    )


def _text(entry: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ExamplesError(f"{where}: {key} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ExamplesError(f"{where}: {key} is missing")
    return value


def _upload(value: Any, where: str, base_dir: Path) -> ExampleUpload:
    from tapd.uploads import UPLOAD_NAME

    if not isinstance(value, dict) or set(value) != {"table", "file"}:
        raise ExamplesError(f'{where}: upload must be {{table = "NAME", file = "FILE.vot"}}')
    table, file = value["table"], value["file"]
    if not isinstance(table, str) or not UPLOAD_NAME.match(table):
        raise ExamplesError(f"{where}: upload table {table!r} is not an ADQL regular identifier")
    if not isinstance(file, str) or not file:
        raise ExamplesError(f"{where}: upload file must be a file name")
    return ExampleUpload(table, base_dir / file)


def upload_table(upload: ExampleUpload, max_rows: int) -> CatalogTable:
    """The catalog entry ``TAP_UPLOAD.<table>`` of an example's upload, read from its file."""
    from tapd.uploads import UploadError, upload_table_of_file
    from tapd.votable_stream import StreamLimits

    if not upload.path.is_file():
        raise UploadError(f"UPLOAD {upload.table}: the file {upload.path} does not exist")
    return upload_table_of_file(upload.table, upload.path, StreamLimits(max_rows))


def check_examples(
    examples: Sequence[Example], catalog: Catalog, *, udfs: Sequence[str] = (), max_rows: int
) -> tuple[tuple[Example, ...], tuple[Rejected, ...]]:
    """(examples whose query translates against ``catalog``, the others with the reason)."""
    from tapd.adql import translate_adql

    good: list[Example] = []
    rejected: list[Rejected] = []
    for example in examples:
        try:
            tables = (upload_table(example.upload, max_rows),) if example.upload else ()
            translate_adql(example.query, catalog.with_uploads(tables), udfs=udfs)
        except TapdError as exc:
            rejected.append(Rejected(example, exc.message))
            continue
        good.append(example)
    return tuple(good), tuple(rejected)
