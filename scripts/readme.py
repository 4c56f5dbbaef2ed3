"""The README's generated parts, so that the README and the files behind it cannot disagree: the result tables from
committed metrics files (the report stage's tables, in the order of params.yaml's data.source and data.targets) and
the DAG as `dvc dag --md` draws it.

    python scripts/readme.py                 # rewrite every generated block of README.md
    python scripts/readme.py seg [file]      # print seg.<method>.<domain>.mIoU of reports/metrics.json (or file)
    python scripts/readme.py det [file]      # det.<method>.<domain>.mAP50

A table block is `<!-- results <task> <metrics file> -->`, the table, `<!-- /results -->`; the DAG block is
`<!-- dag -->`, the diagram, `<!-- /dag -->`. tests/test_readme.py fails when a block differs from what it would be,
from the committed metrics file or the working tree's (a run, e.g. CI's smoke profile, rewrites the latter).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.report.tables import load_metrics, results, to_markdown  # noqa: E402
from stages import params  # noqa: E402

BLOCK = re.compile(r"(<!-- results (\w+) (\S+) -->\n)(.*?)(<!-- /results -->)", re.S)
DAG = re.compile(r"(<!-- dag -->\n)(.*?)(<!-- /dag -->)", re.S)


def table(metrics: dict, task: str) -> str:
    """`task`'s main table (mIoU, mAP50) of `metrics`, as the report's summary.md writes it."""
    data = params("data", required=("source", "targets"), path=ROOT / "params.yaml")
    tables = results(metrics, data["source"], list(data["targets"]))
    return next(to_markdown(t) for t in tables if t.task == task and t.primary)


def committed(root: Path, path: str) -> dict | None:
    """The metrics file at `path` as git's HEAD holds it (None outside git or where HEAD has no such file)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=root, capture_output=True, text=True, timeout=60)
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def blocks(text: str, root: Path, revision: bool = False) -> list[tuple[re.Match, str]]:
    """Every results block of `text` with the table its metrics file (relative to `root`) gives: the file in the
    working tree, or with `revision` as git's HEAD holds it (where it is in git)."""
    found = []
    for match in BLOCK.finditer(text):
        metrics = committed(root, match.group(3)) if revision else None
        found.append((match, table(metrics or load_metrics(root / match.group(3)), match.group(2)) + "\n"))
    return found


def dag(root: Path) -> str:
    """`dvc dag --md` of the project at `root`."""
    dvc = Path(sys.executable).parent / "dvc"
    return subprocess.run([dvc, "dag", "--md"], cwd=root, capture_output=True, text=True, timeout=300,
                          check=True).stdout  # fmt: skip


def rewrite(readme: Path) -> str:
    text = readme.read_text()
    found = blocks(text, readme.parent)
    for match, fresh in reversed(found):
        text = text[: match.start(4)] + fresh + text[match.end(4) :]
    text = DAG.sub(lambda m: m.group(1) + dag(readme.parent) + m.group(3), text)
    readme.write_text(text)
    return f"rewrote {len(found)} tables and the DAG in {readme}"


if __name__ == "__main__":
    if len(sys.argv) == 1:
        print(rewrite(ROOT / "README.md"))
    else:
        print(table(load_metrics(Path(sys.argv[2] if len(sys.argv) > 2 else "reports/metrics.json")), sys.argv[1]))
