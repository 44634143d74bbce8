"""The report page: sections of figures and tables rendered as one plain HTML file.

Inline CSS, no script, images by relative path (``figures/<name>.png``), so the folder can be
copied, served or opened from disk as it is.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
from matplotlib.figure import Figure

FIGURES_DIR = "figures"

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .caption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.skipped { color: #8a5a00; background: #fff8e6; padding: 0.4em 0.6em; border-left: 3px solid #e0a800; }
"""


@dataclass
class Item:
    """A figure (saved as figures/<name>.png) or an HTML table, with its caption."""

    name: str
    caption: str
    figure: Figure | None = None
    table: str | None = None

    @property
    def image_path(self) -> str:
        return f"{FIGURES_DIR}/{self.name}.png"


@dataclass
class Section:
    title: str
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. why a stage is skipped


def html_table(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """``df`` as an HTML table; numeric columns right-aligned, formatted by ``formats``
    (column -> format spec, e.g. '.3f' or ',d'); NaN shown as n/a."""
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row):
            cells.append(_cell(v, formats.get(c)))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(v: Any, fmt: str | None) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v != v:  # NaN
            return '<td class="num">n/a</td>'
        text = format(v, fmt) if fmt else (f"{v:,}" if isinstance(v, int) else f"{v:.4g}")
        return f'<td class="num">{text}</td>'
    try:
        if pd.api.types.is_number(v) and not isinstance(v, (bool, str)):
            return _cell(v.item(), fmt)
    except (AttributeError, ValueError):
        pass
    return f"<td>{html.escape(str(v))}</td>"


def render_page(title: str, intro: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole page; ``intro`` lines are escaped text under the title."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in intro]
    toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections))
    parts.append(f"<ul>{toc}</ul>")
    for i, s in enumerate(sections):
        parts.append(f'<h2 id="s{i}">{html.escape(s.title)}</h2>')
        parts += [f'<p class="skipped">{html.escape(n)}</p>' for n in s.notes]
        for it in s.items:
            if it.figure is not None:
                parts.append(f'<figure><img src="{html.escape(it.image_path)}" alt="{html.escape(it.caption)}">'
                             f"<figcaption>{html.escape(it.caption)}</figcaption></figure>")
            if it.table is not None:
                parts.append(f'<div class="table">{it.table}<p class="caption">{html.escape(it.caption)}</p></div>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
