"""Results tables from reports/metrics.json: one per task and score, methods x domains (the source, the targets, the
target mean), mean ± std over seeds, the best mean of each column marked. An HTML cell carries its metrics.json key
and value (`data-key`, `data-value`; `data-std-key`, `data-std-value`), so the page can be checked against the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from numbers import Real
from pathlib import Path

from pipeline.errors import InputError
from pipeline.tables import TARGET_MEAN

STD = "_std"
TASKS = {"seg": "Segmentation", "det": "Detection"}


@dataclass(frozen=True)
class Cell:
    key: str  # the metrics.json key, e.g. seg.drsf.world_a_fog.mIoU
    value: float
    std_key: str | None
    std: float | None
    best: bool

    def text(self) -> str:
        return f"{self.value:.1f}" + ("" if self.std is None else f" ± {self.std:.1f}")


@dataclass(frozen=True)
class Table:
    task: str
    score: str
    primary: bool  # the task's first score (mIoU, mAP50): the one with a std and a domain-gap chart
    source: str
    domains: list[str]
    rows: dict[str, list[Cell | None]]  # method -> a cell per domain, None where it has no score

    @property
    def title(self) -> str:
        return f"{TASKS.get(self.task, self.task)}: {self.score} (%)"

    @property
    def caption(self) -> str:
        spread = " ± std" if any(c and c.std is not None for cells in self.rows.values() for c in cells) else ""
        return f"{self.title}, mean{spread} over seeds, best per column in bold"

    def label(self, domain: str) -> str:
        return "target mean" if domain == TARGET_MEAN else f"{domain} (source)" if domain == self.source else domain


def load_metrics(path: Path) -> dict:
    """reports/metrics.json, checked to nest task -> method -> domain -> {score: number}."""
    fix = "run `dvc repro evaluate` (it writes reports/metrics.json)"
    if not path.is_file():
        raise InputError(path, "missing", fix)
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(path, f"not JSON ({error})", fix) from None
    for key, value in leaves(metrics):
        if not isinstance(value, Real) or isinstance(value, bool):
            raise InputError(path, f"`{key}` is {value!r}, not task -> method -> domain -> score -> number", fix)
    return metrics


def leaves(node, key: str = "", depth: int = 4):
    """(dotted key, value) of every score in metrics.json's nesting; a value met above its depth ends the key there."""
    if depth == 0 or not isinstance(node, dict):
        yield key, node
        return
    for name, child in node.items():
        yield from leaves(child, f"{key}.{name}" if key else name, depth - 1)


def results(metrics: dict, source: str, targets: list[str]) -> list[Table]:
    """A table per task and score of `metrics`; domains in the order source, targets, target mean, then any other."""
    order = [source, *targets, TARGET_MEAN]
    out = []
    for task, methods in metrics.items():
        present = list(dict.fromkeys(d for by_domain in methods.values() for d in by_domain))
        domains = [d for d in order if d in present] + [d for d in present if d not in order]
        scores = dict.fromkeys(k for by_domain in methods.values() for s in by_domain.values() for k in s
                               if not k.endswith(STD))  # fmt: skip
        out += [_table(task, score, i == 0, source, methods, domains) for i, score in enumerate(scores)]
    return out


def _table(task: str, score: str, primary: bool, source: str, methods: dict, domains: list[str]) -> Table:
    values = {m: {d: by[d] for d in domains if score in by.get(d, {})} for m, by in methods.items()}
    best = {d: max((v[d][score] for v in values.values() if d in v), default=None) for d in domains}
    rows = {m: [_cell(f"{task}.{m}.{d}.{score}", v[d], score, best[d]) if d in v else None for d in domains]
            for m, v in values.items()}  # fmt: skip
    return Table(task, score, primary, source, domains, rows)


def _cell(key: str, scores: dict, score: str, best: float) -> Cell:
    """The cell of `scores[score]` (metrics.json's `key`), with `<score>_std` where there is one."""
    std = score + STD
    return Cell(key, scores[score], key + STD if std in scores else None, scores.get(std), scores[score] == best)


def to_html(table: Table) -> str:
    head = "".join(f"<th>{escape(table.label(d))}</th>" for d in table.domains)
    body = "".join(f"<tr><th scope=\"row\">{escape(m)}</th>{''.join(map(_td, cells))}</tr>"
                   for m, cells in table.rows.items())  # fmt: skip
    return (f'<table class="results"><caption>{escape(table.caption)}</caption><thead><tr><th>method</th>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table>")


def _td(cell: Cell | None) -> str:
    if cell is None:
        return "<td class=\"none\">–</td>"
    attrs = f' data-key="{escape(cell.key)}" data-value="{json.dumps(cell.value)}"'
    if cell.std_key:
        attrs += f' data-std-key="{escape(cell.std_key)}" data-std-value="{json.dumps(cell.std)}"'
    return (f'<td class="best"{attrs}><strong>{cell.text()}</strong></td>' if cell.best
            else f"<td{attrs}>{cell.text()}</td>")  # fmt: skip


def to_markdown(table: Table) -> str:
    lines = [f"**{table.caption}**", "",
             "| method | " + " | ".join(table.label(d) for d in table.domains) + " |",
             "|---" * (len(table.domains) + 1) + "|"]  # fmt: skip
    for method, cells in table.rows.items():
        text = ["–" if c is None else f"**{c.text()}**" if c.best else c.text() for c in cells]
        lines.append(f"| {method} | " + " | ".join(text) + " |")
    return "\n".join(lines)
