"""The README against the files that back it: every result table equals what its committed metrics file gives, the
DAG is `dvc dag`'s, and `.ci/run` runs the README's two commands (the pipeline on the smoke profile)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from readme import DAG, blocks, dag  # noqa: E402

README = (ROOT / "README.md").read_text()


def stale(text: str) -> list[str]:
    """The results blocks of `text` that match neither the committed metrics file nor the working tree's."""
    fresh = zip(blocks(text, ROOT, revision=True), blocks(text, ROOT))
    return [match.group(3) for (match, committed), (_, working) in fresh if match.group(4) not in (committed, working)]


def test_every_result_table_is_what_its_metrics_file_gives():
    assert {m.group(3) for m, _ in blocks(README, ROOT)} >= {"reports/metrics.json"}
    assert not stale(README), "run python scripts/readme.py"


def test_a_changed_number_is_caught():
    match, _ = blocks(README, ROOT)[0]
    broken = README[: match.start(4)] + re.sub(r"\d+\.\d", "99.9", match.group(4), count=1) + README[match.end(4) :]
    assert stale(broken) == [match.group(3)]


def test_ci_runs_the_readme_commands():
    commands = re.findall(r"```bash\n(.*?)\n```", README.split("## The two commands")[1], re.S)[:2]
    ci = (ROOT / ".ci/run").read_text()
    assert commands[0].endswith("dvc repro")
    assert commands[0].replace("dvc repro", "dvc exp run -S profile=smoke") in ci
    assert f"\n{commands[1]}\n" in ci


def test_the_dag_is_the_one_dvc_draws():
    assert DAG.search(README).group(2) == dag(ROOT), "run python scripts/readme.py"
