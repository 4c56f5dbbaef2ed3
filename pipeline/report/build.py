"""The report run: draw reports/report/ (replaced whole, so no stale figure stays), then write reports/index.html and
reports/summary.md, each atomically. Only reports/metrics.json is required; every other input may be absent."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

from pipeline.atomic import atomic_dir, atomic_path
from pipeline.report import figures, html
from pipeline.report.samples import by_condition
from pipeline.report.tables import TASKS, Table, load_metrics, results, to_markdown

FIGURES = "report"  # reports/report/: the report's own figures
TRAIN_LOGS = {"seg": "train", "det": "det-train"}  # task -> its DVCLive folder under reports/


def revision(root: Path) -> str:
    """`git rev-parse HEAD` of `root`, plus ` dirty` where the tree has changes; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=60)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode or status.returncode:
        return "unknown"
    return head.stdout.strip() + (" dirty" if status.stdout.strip() else "")


def build(root: Path, title: str, samples: int, source: str, targets: list[str]) -> str:
    """Write the report of the project at `root`; a line saying what was written."""
    rev, generated = revision(root), datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")  # before writing
    reports = root / "reports"
    tables = results(load_metrics(reports / "metrics.json"), source, targets)
    with atomic_dir(reports / FIGURES) as tmp:
        for table in tables:
            if table.primary:
                figures.domain_gap(table, tmp / f"domain_gap_{table.task}.png")
        for task, logs in TRAIN_LOGS.items():
            runs = {p.parent.parent.name: p for p in sorted((reports / logs).glob("*/plots/metrics"))}
            figures.curves(runs, tmp / f"curves_{task}.png")
    page = _page(root, title, tables, samples, [source, *targets])
    params = (root / "params.yaml").read_text()
    page.add("provenance", "Revision and parameters", html.provenance(rev, generated, params))
    with atomic_path(reports / "index.html") as tmp:
        tmp.write_text(page.document())
    markdown = [f"{to_markdown(t)}\n" for t in tables] or [f"segmentation and detection scores: {html.ABSENT}.\n"]
    links = [f"- [{caption}]({link})" for caption, link in page.figures]
    head = [f"# {title}", "", f"git revision `{rev}`, generated {generated}; the page: [index.html](index.html)", ""]
    with atomic_path(reports / "summary.md") as tmp:
        tmp.write_text("\n".join([*head, "## Results", "", *markdown, "## Figures", "", *links]) + "\n")
    return f"wrote {reports / 'index.html'} and {reports / 'summary.md'}: {len(tables)} tables, {len(links)} figures"


def _page(root: Path, title: str, tables: list[Table], samples: int, domains: list[str]) -> html.Page:
    """Every section but the provenance; figures of reports/report/ once drawn."""
    reports = root / "reports"
    page = html.Page(reports, title)
    page.add("results", "Results", html.results(tables))
    gaps = [page.figure(reports / FIGURES / f"domain_gap_{task}.png", f"{name}: source vs each target")
            for task, name in TASKS.items()]  # fmt: skip
    page.add("domain-gap", "Domain gap", "".join(gaps))
    heatmap = page.figure(reports / "seg" / "per_class.png", "Segmentation: IoU per class on the targets")
    page.add("per-class", "Per-class scores", heatmap)
    rows = by_condition(root / "data" / "prompts.parquet", reports / "filter" / "scores.csv", samples)
    fit = page.figure(reports / "synthesize" / "layout.png", "synthetic images vs the labels they reuse, per condition")
    page.add("samples", "Synthetic samples", fit + html.samples(page, reports / "synthesize" / "sheets", rows))
    page.add("filter", "Filter: kept vs rejected", html.filtering(page, reports / "filter"))
    folders = {name: reports / task / "gallery" for task, name in TASKS.items()}
    page.add("galleries", "Prediction galleries", html.galleries(page, folders, domains))
    curves = [page.figure(reports / FIGURES / f"curves_{task}.png", f"{TASKS[task]} training curves")
              for task in TRAIN_LOGS]  # fmt: skip
    page.add("curves", "Training curves", "".join(curves))
    return page
