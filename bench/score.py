"""Benchmark: scoring each model in a DVC stage of its own (`dgsynth score`) against scoring every model in one process,
as the `evaluate` stage did until the score stages came.

    python bench/score.py          # after `dvc repro`: the default run's trained models

On the models of params.yaml's methods and seeds of both tasks, on the domains `evaluate` scores, in one run:
1. one process scores every model (`stages.score.run` in a loop: mmseg and mmdet imported once, each model loaded
   and scored on every domain, which is what `evaluate` did);
2. `dgsynth score` once per model, each a process of its own as `dvc repro` runs it, then `dgsynth evaluate` gathers.
Each works in a temporary project of its own (links to models/ and data/, a copy of params.yaml), so reports/ is
untouched; every score file of 2 must equal 1's to the byte. It gives what the whole run pays for the stages (1
against the sum of 2) and what an experiment that retrains one model pays to score it (1, which was the whole
evaluate stage, against that model's process and the gather). Prints a table and writes reports/bench/score.json.
Run it alone on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml
from convert import run as timed
from provenance import commit, machine

OUT = Path("reports/bench/score.json")
BIN = Path(sys.executable).parent


def project(root: Path) -> Path:
    """A project at `root` that reads this one's models, data and params and writes its own reports."""
    root.mkdir()
    for name in ("models", "data"):
        (root / name).symlink_to(Path(name).resolve())
    shutil.copy("params.yaml", root / "params.yaml")
    return root


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    runs = [(task, method, seed) for task, section in (("seg", "train"), ("det", "det"))
            for method in ["source", *params[section]["methods"]] for seed in params[section]["seeds"]]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        one, per_model = project(Path(tmp) / "one"), project(Path(tmp) / "per-model")
        loop = f"from stages import score\nfor task, method, seed in {runs!r}:\n    score.run(method, seed, task)"
        whole = timed([sys.executable, "-c", loop], one)
        each = {}
        for task, method, seed in runs:
            command = [str(BIN / "dgsynth"), "score", method, "--seed", str(seed), "--task", task]
            each[f"{task}/{method}-s{seed}"] = timed(command, per_model)
        gather = timed([str(BIN / "dgsynth"), "evaluate"], per_model)
        same = files(one / "reports/scores") == files(per_model / "reports/scores")
    stages = sum(each.values()) + gather
    report = {
        "models": len(runs), "one_process": round(whole, 1), "per_model": {k: round(v, 1) for k, v in each.items()},
        "gather": round(gather, 1), "per_model_and_gather": round(stages, 1),
        "whole_run_ratio": round(stages / whole, 3), "same_bytes": same,
        "one_model_experiment": {k: round(v + gather, 1) for k, v in each.items()},
        "command": "python bench/score.py", "commit": commit(), "machine": machine(load_average=os.getloadavg()[0]),
    }  # fmt: skip
    print(f"{'scoring':<40} {'seconds':>8}")
    print(f"{f'one process, {len(runs)} models (the old evaluate)':<40} {whole:>8.1f}")
    for name, seconds in each.items():
        print(f"{f'dgsynth score {name}':<40} {seconds:>8.1f}")
    print(f"{'dgsynth evaluate (gathers)':<40} {gather:>8.1f}")
    print(f"{'score stages and evaluate':<40} {stages:>8.1f}  ({stages / whole:.2f}x one process)")
    print(f"every score file the same in both: {same}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    if not same:
        sys.exit("the score stages wrote other scores than one process: see reports/bench/score.json")


if __name__ == "__main__":
    main()
