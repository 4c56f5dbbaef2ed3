"""The report page: a static HTML file that opens from disk (relative links only, inline CSS, no script, nothing
fetched from a network). Each section shows its inputs or says they were not produced by this run."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from pipeline.report.tables import Table, to_html
from pipeline.sheets import slug

ABSENT = "not produced by this run"
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
nav a { margin-right: 1em; }
section { margin-top: 2.5em; border-top: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
table.results td { text-align: right; white-space: nowrap; }
td.best { background: #e6f2e6; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
figure { margin: 1em 0; }
img { max-width: 100%; border: 1px solid #eee; }
.absent { color: #888; font-style: italic; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def absent(what: str) -> str:
    return f'<p class="absent">{escape(what)}: {ABSENT}.</p>'


class Page:
    """The page's sections, with every figure linked relative to `reports` (where index.html is) and remembered in
    `figures` (caption, relative path) for the Markdown summary."""

    def __init__(self, reports: Path, title: str):
        self.reports, self.title = reports, title
        self.sections: list[tuple[str, str, str]] = []
        self.figures: list[tuple[str, str]] = []

    def add(self, anchor: str, heading: str, body: str) -> None:
        self.sections.append((anchor, heading, body))

    def figure(self, path: Path, caption: str) -> str:
        if not path.is_file():
            return absent(caption)
        link = quote(path.relative_to(self.reports).as_posix())
        self.figures.append((caption, link))
        return (f'<figure><a href="{link}"><img src="{link}" alt="{escape(caption)}"></a>'
                f"<figcaption>{escape(caption)}</figcaption></figure>")  # fmt: skip

    def document(self) -> str:
        nav = "".join(f'<a href="#{a}">{escape(h)}</a>' for a, h, _ in self.sections)
        body = "".join(f'<section id="{a}"><h2>{escape(h)}</h2>{b}</section>' for a, h, b in self.sections)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(self.title)}</title>'
                f"<style>{CSS}</style></head><body><h1>{escape(self.title)}</h1><nav>{nav}</nav>{body}</body></html>\n")


def frame_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format="{:.2f}".format, border=0, classes="data")


def results(tables: list[Table]) -> str:
    return "".join(map(to_html, tables)) or absent("segmentation and detection scores")


def samples(page: Page, sheets: Path, rows: dict[str, pd.DataFrame]) -> str:
    """Per condition: its contact sheet (reports/synthesize/sheets/<condition>.png) and its rows of prompts and scores;
    the conditions of `rows`, else those of the sheets on disk."""
    conditions = list(rows) or [p.stem for p in sorted(sheets.glob("*.png"))]
    parts = [f"<h3>{escape(c)}</h3>{page.figure(sheets / f'{slug(c)}.png', f'synthetic images: {c}')}"
             + (frame_table(rows[c]) if c in rows else absent(f"prompts and filter scores of {c}"))
             for c in conditions]  # fmt: skip
    return "".join(parts) or absent("synthetic images, prompts and filter scores")


def filtering(page: Page, folder: Path) -> str:
    counts = folder / "conditions.csv"
    table = frame_table(pd.read_csv(counts)) if counts.is_file() else absent("kept and rejected counts per condition")
    return (f"<h3>Kept and rejected per condition</h3>{table}"
            + page.figure(folder / "sheet.png", "kept vs rejected synthetic images")
            + page.figure(folder / "histograms.png", "distances to the source statistics per condition"))  # fmt: skip


def galleries(page: Page, folders: dict[str, Path], order: list[str]) -> str:
    """A gallery per domain (in `order`, then any other) of each task's folder of `folders` (task -> folder)."""
    parts = []
    for task, folder in folders.items():
        found = {p.stem: p for p in sorted(folder.glob("*.png"))}
        domains = [d for d in order if d in found] + [d for d in found if d not in order]
        figures = "".join(page.figure(found[d], f"{task} predictions: {d}") for d in domains)
        parts.append(f"<h3>{escape(task)}</h3>" + (figures or absent(f"{task} prediction galleries")))
    return "".join(parts)


def provenance(revision: str, generated: str, params: str) -> str:
    return (f"<p>git revision: <code>{escape(revision)}</code><br>generated: {escape(generated)}</p>"
            f"<h3>params.yaml</h3><pre>{escape(params)}</pre>")
