"""The report's own figures (matplotlib, Agg): the domain gap per method, and training curves from DVCLive's logs.

DVCLive writes one TSV per logged value under reports/<train|det-train>/<run>/plots/metrics/ (nested folders for
names with a slash): a `step` column and the value as the last column (a `timestamp` column may come first).
Timing values (`iter`, `time`, `data_time`) are left out of the curves.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.atomic import atomic_path  # noqa: E402
from pipeline.errors import InputError  # noqa: E402
from pipeline.report.tables import Table  # noqa: E402

TIMING = {"iter", "time", "data_time"}
SEED_STYLES = ["-", "--", ":", "-."]


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def domain_gap(table: Table, path: Path) -> None:
    """Grouped bars: per method, its mean score on each domain (source first), with the std over seeds."""
    methods = list(table.rows)
    width = 0.8 / len(table.domains)
    fig, ax = plt.subplots(figsize=(2 + 1.4 * len(methods), 3.6), layout="constrained")
    for j, domain in enumerate(table.domains):
        cells = [table.rows[m][j] for m in methods]
        ax.bar(np.arange(len(methods)) + (j - (len(table.domains) - 1) / 2) * width,
               [np.nan if c is None else c.value for c in cells], width,
               yerr=[0 if c is None or c.std is None else c.std for c in cells],
               label=table.label(domain), color="0.3" if domain == table.source else None)  # fmt: skip
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel(f"{table.score} (%)")
    ax.set_title(f"{table.title}: source vs each target")
    fig.legend(fontsize=7, loc="outside right upper")
    _save(fig, path)


def curves(runs: dict[str, Path], path: Path) -> None:
    """One panel per logged value, a line per run (colour per method, style per seed) from each run's DVCLive
    folder in `runs`; no file when no run logged anything."""
    series: dict[str, dict[str, pd.DataFrame]] = {}
    for run, folder in runs.items():
        for tsv in sorted(folder.rglob("*.tsv")):
            name = tsv.relative_to(folder).with_suffix("").as_posix()
            if name not in TIMING:
                series.setdefault(name, {})[run] = _read_tsv(tsv)
    if not series:
        return
    methods = list(dict.fromkeys(_method_seed(run)[0] for run in runs))
    columns = min(4, len(series))
    lines = -(-len(series) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.4 * columns, 2.5 * lines + 0.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (name, by_run) in zip(axes.flat, sorted(series.items())):
        for run, frame in by_run.items():
            method, seed = _method_seed(run)
            ax.plot(frame["step"], frame[frame.columns[-1]], label=run, color=f"C{methods.index(method) % 10}",
                    linestyle=SEED_STYLES[seed % len(SEED_STYLES)])  # fmt: skip
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(series) :]:
        ax.axis("off")
    legend = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=min(6, len(legend)), fontsize=7)
    _save(fig, path)


def _method_seed(run: str) -> tuple[str, int]:
    """`naive-s1` -> (naive, 1); a run named otherwise is its own method, seed 0."""
    method, _, seed = run.rpartition("-s")
    return (method, int(seed)) if method and seed.isdigit() else (run, 0)


def _read_tsv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t")
    if "step" not in frame.columns or len(frame.columns) < 2:
        raise InputError(path, "not a DVCLive log (no `step` column and value)", "re-run its training stage")
    return frame
