"""A self-contained HTML page: inline CSS, PNG figures embedded as base64 data URIs, escaped text.

The page can be mailed or copied off a cluster as one file; it references
nothing outside itself.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

Column = Tuple[str, str, Optional[Callable[[Any], str]]]

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-top: 0.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; font-family: monospace; }
tr.highlight td { background: #fff6d5; }
table.inner { margin: 0; font-size: 1em; } table.inner td, table.inner th { padding: 0.1em 0.4em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
p.note { color: #555; font-size: 0.9em; max-width: 70em; }
nav a { margin-right: 1em; }
"""


def escape(value: Any) -> str:
    """Text of any value, HTML-escaped (dicts and lists as compact JSON)."""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, separators=(", ", ": "))
    return html.escape("-" if value is None else str(value))


def image(path: Path, alt: str) -> str:
    """An <img> with the PNG at ``path`` embedded as a base64 data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def number(digits: int = 4) -> Callable[[Any], str]:
    """Formatter: fixed number of decimals, '-' for None."""
    return lambda v: "-" if v is None else f"{float(v):.{digits}f}"


def percent(digits: int = 2) -> Callable[[Any], str]:
    """Formatter: a rate in 0..1 as a percentage."""
    return lambda v: "-" if v is None else f"{100.0 * float(v):.{digits}f}%"


def table(rows: Sequence[Dict[str, Any]], columns: Sequence[Column], text_columns: Sequence[str] = (),
          highlight: Optional[Callable[[Dict[str, Any]], bool]] = None) -> str:
    """An HTML table of ``rows``; each column is (key, header, formatter or None for plain text)."""
    head = "".join(f'<th class="{"text" if key in text_columns else ""}">{html.escape(title)}</th>'
                   for key, title, _ in columns)
    body: List[str] = []
    for row in rows:
        cells = []
        for key, _, formatter in columns:
            shown = escape(row.get(key)) if formatter is None else html.escape(formatter(row.get(key)))
            cells.append(f'<td class="{"text" if key in text_columns else ""}">{shown}</td>')
        marked = ' class="highlight"' if highlight is not None and highlight(row) else ""
        body.append(f"<tr{marked}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def fields(rows: Sequence[Dict[str, Any]]) -> str:
    """A two-column field/value table; a value that is a mapping or a list of mappings is a table of its own."""
    body = "".join(f'<tr><td class="text">{escape(row["field"])}</td><td class="text">{value_html(row["value"])}</td>'
                   "</tr>" for row in rows)
    return ('<table><thead><tr><th class="text">field</th><th class="text">value</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def value_html(value: Any) -> str:
    """HTML of one value: a mapping as a key/value table, a list of mappings as a table with a column per key,
    a list of plain values joined by commas, anything else as escaped text."""
    if isinstance(value, dict) and value:
        rows = "".join(f'<tr><td class="text">{escape(key)}</td><td class="text">{value_html(item)}</td></tr>'
                       for key, item in value.items())
        return f'<table class="inner">{rows}</table>'
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, dict) for item in value):
        keys = list(dict.fromkeys(key for item in value for key in item))
        head = "".join(f'<th class="text">{escape(key)}</th>' for key in keys)
        body = "".join("<tr>" + "".join(f'<td class="text">{value_html(item.get(key))}</td>' for key in keys)
                       + "</tr>" for item in value)
        return f'<table class="inner"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    if isinstance(value, (list, tuple)):
        return escape(", ".join("-" if item is None else str(item) for item in value))
    return escape(value)


def note(text: str) -> str:
    """A small explanatory paragraph."""
    return f'<p class="note">{html.escape(text)}</p>'


def page(title: str, sections: Sequence[Tuple[str, str, str]]) -> str:
    """The whole document; ``sections`` are (anchor, heading, inner HTML)."""
    nav = "".join(f'<a href="#{anchor}">{html.escape(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>{inner}</section>'
                   for anchor, heading, inner in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}"
            "</body></html>\n")
