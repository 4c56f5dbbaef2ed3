"""Benchmark: where the time of a whole `dvc repro` goes, stage by stage, and within the stages by progress bar.

    python bench/repro.py [--force]          # run `dvc repro` (-f: every stage), time it, write the JSON
    python bench/repro.py --log FILE         # the same numbers from the stamped log of an earlier run
    python bench/repro.py ... --out PATH     # write the JSON there (a second machine's run beside the first's)

Every output line of `dvc repro` is stamped with the time it arrived (`<unix seconds> <line>`) and kept in
`.dgsynth/repro.log`; a stage's time runs from its "Running stage" line to the next one (or the end), and a progress
bar's time is the elapsed time tqdm last printed for it at its total (the generator's corpus rendering and training
phases, the synthesis, the training runs). Stages are also summed by kind (data, generator, synthesize, filter,
segmentation and detection training, scoring, evaluate, other). Prints a table and writes reports/bench/repro.json (or
`--out`). Run it alone on the machine: anything beside it slows the stages it overlaps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from provenance import commit, machine

OUT = Path("reports/bench/repro.json")
LOG = Path(".dgsynth/repro.log")
STAGE = re.compile(r"Running stage '([^']+)'")
BAR = re.compile(r"([\w@/. -]+): +\d+%\|[^|]*\| *(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")
KINDS = (("data", "data"), ("generator", "generator"), ("synthesize", "synthesize"), ("filter", "filter"),
         ("train", "segmentation training"), ("det", "detection training"), ("score", "scoring"),
         ("evaluate", "evaluate"))  # fmt: skip


def run_stamped(force: bool, log: Path) -> list[tuple[float, str]]:
    """Run `dvc repro` (with -f when `force`), echoing and stamping each line into `log`; fail as it fails."""
    dvc = Path(sys.executable).parent / "dvc"
    log.parent.mkdir(parents=True, exist_ok=True)
    stamped = [(time.time(), "start")]
    with subprocess.Popen([str(dvc), "repro", *(["-f"] if force else [])], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as process, open(log, "w") as out:  # fmt: skip
        for line in process.stdout:
            stamped.append((time.time(), line.rstrip("\n")))
            print(line, end="", flush=True)
            out.write(f"{stamped[-1][0]:.1f} {stamped[-1][1]}\n")
    stamped.append((time.time(), "end"))
    if process.returncode:
        raise SystemExit(f"dvc repro failed (exit {process.returncode}); its output is in {log}")
    return stamped


def read_stamped(log: Path) -> list[tuple[float, str]]:
    """The (time, line) pairs of a stamped log; lines without a stamp (tqdm's carriage returns) join the last."""
    stamped: list[tuple[float, str]] = []
    for line in log.read_text(errors="replace").split("\n"):
        stamp, _, rest = line.partition(" ")
        try:
            stamped.append((float(stamp), rest))
        except ValueError:
            if stamped:
                stamped[-1] = (stamped[-1][0], stamped[-1][1] + "\n" + line)
    return stamped


def unique(name: str, taken: dict) -> str:
    """`name`, or `name (2)`, `name (3)`, ... where a bar of that name finished before (e.g. each task's evaluation
    of `source-s0 on <domain>`)."""
    return next(n for i in range(1, len(taken) + 2) if (n := name if i == 1 else f"{name} ({i})") not in taken)


def timings(stamped: list[tuple[float, str]]) -> dict:
    """Wall time, seconds per stage, per kind of stage, and per finished progress bar."""
    starts = [(t, m.group(1)) for t, line in stamped if (m := STAGE.search(line))]
    end = stamped[-1][0]
    stages = {name: round((starts[i + 1][0] if i + 1 < len(starts) else end) - t, 1)
              for i, (t, name) in enumerate(starts)}  # fmt: skip
    kinds: dict[str, float] = {}
    for name, seconds in stages.items():
        kind = next((label for prefix, label in KINDS if name.split("@")[0].startswith(prefix)), "other")
        kinds[kind] = round(kinds.get(kind, 0.0) + seconds, 1)
    bars: dict[str, int] = {}
    running: dict[str, str] = {}  # a bar's name -> its key in `bars` once it has finished, until one restarts at 0
    for _, line in stamped:
        for part in re.split(r"[\r\n]", line):
            if not (m := BAR.search(part)):
                continue
            name, done, total = m.group(1).strip(), int(m.group(2)), int(m.group(3))
            if done == 0:
                running.pop(name, None)
            elif done == total:  # tqdm redraws a finished bar (on close): its last state counts
                key = running.setdefault(name, unique(name, bars))
                bars[key] = int(m.group(4) or 0) * 3600 + int(m.group(5)) * 60 + int(m.group(6))
    return {"wall_s": round(end - stamped[0][0], 1), "stages_s": stages, "kinds_s": kinds, "bars_s": bars}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="dvc repro -f: run every stage")
    parser.add_argument("--log", type=Path, default=None, help="read this stamped log instead of running")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    stamped = read_stamped(args.log) if args.log else run_stamped(args.force, LOG)
    result = timings(stamped)
    print(f"\n{'stage':<28}{'s':>8}")
    for name, seconds in result["stages_s"].items():
        print(f"{name:<28}{seconds:>8.0f}")
    print(f"\n{'kind':<28}{'s':>8}{'share':>8}")
    for kind, seconds in sorted(result["kinds_s"].items(), key=lambda item: -item[1]):
        print(f"{kind:<28}{seconds:>8.0f}{seconds / result['wall_s']:>8.0%}")
    print(f"{'whole run':<28}{result['wall_s']:>8.0f}")
    ran = f"the stamped log {args.log} (--log)" if args.log else "dvc repro" + (" -f" if args.force else "")
    result |= {"command": ran, "commit": commit(),
               "machine": machine(torch_threads=torch.get_num_threads()),
               "load_average_after": os.getloadavg()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
