"""HTML results: a small self-contained page with one table, for people.

Column headers carry the unit and, as a tooltip, the description; NULL is an
empty cell; a note under the table says when MAXREC dropped rows or the query
failed midway.
"""

from __future__ import annotations

from html import escape
from typing import BinaryIO

from tapd.formats.base import TEXT_LINES, TableWriter, concat_sql
from tapd.formats.textual import cell_text

_STYLE = (
    "body{font-family:sans-serif;margin:1em}"
    "table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:2px 6px;white-space:pre-wrap}"
    "th{background:#eee;position:sticky;top:0}"
    "td{font-family:monospace}"
    ".unit{font-weight:normal;color:#555}"
)


class HtmlWriter(TableWriter):
    copy_options = TEXT_LINES
    copy_mode = "lines"

    def row_sql(self) -> list[str]:
        parts: list[str] = []
        for i, cell in enumerate(self.cells):
            parts.append("'<tr><td>'" if i == 0 else "'</td><td>'")
            parts.append(cell_text(cell, xml=True))
        parts.append("'</td></tr>'")
        return [concat_sql(parts)]

    def begin(self, out: BinaryIO) -> None:
        lines = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8"><title>Query result</title>',
            f"<style>{_STYLE}</style></head><body>",
        ]
        for name, value in self.infos:
            lines.append(f"<p><b>{escape(name)}</b>: <code>{escape(value)}</code></p>")
        lines.append("<table><thead><tr>")
        for meta in self.columns:
            title = f' title="{escape(meta.description)}"' if meta.description else ""
            unit = f'<br><span class="unit">[{escape(meta.unit)}]</span>' if meta.unit else ""
            lines.append(f"<th{title}>{escape(meta.name)}{unit}</th>")
        lines.append("</tr></thead><tbody>\n")
        out.write("\n".join(lines).encode())

    def _close(self, out: BinaryIO, note: str) -> None:
        out.write(f"</tbody></table>\n{note}</body></html>\n".encode())

    def end(self, out: BinaryIO, *, overflow: bool) -> None:
        note = (
            "<p><b>Overflow</b>: more rows matched than MAXREC allowed.</p>\n" if overflow else ""
        )
        self._close(out, note)

    def fail(self, out: BinaryIO, message: str) -> None:
        self._close(out, f"<p><b>Error</b>: {escape(message)}</p>\n")
