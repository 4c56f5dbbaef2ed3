"""Make the committed evidence, reports/evidence/*.json: for segmentation the default profile at three seeds, its
ablations (DRSF without DFDR, without MDSF, naive and DRSF without the filter), naive, DRSF and DIDEX on images made
at DIDEX's strength 0.9, every synthetic-data method with source_aug's augmentation, and every method on a schedule
three times the default's (900 iterations, where source-only's validation curve has flattened, bench/schedule.py)
with the same ablations; for detection the default at three seeds (det-3seeds: segmentation only trains the
filter's source-only model). The runs named `*-unet-400*` were made with the previous default generator, whose
text-to-image UNet trained 400 steps and draws every caption word alike (bench/captions.py): the same runs.
Each run leaves its `reports/metrics.json` (means and population stds over the seeds, per domain
and target mean) as `<run>.json` and its task's per-seed scores (`reports/<task>/scores.csv`) as `<run>-scores.csv`;
then seg-variants.json puts every changed method beside the full method of seg-3seeds.json, as rows
`<method>-<change>` (e.g. drsf-no-dfdr), seg-900-iters-variants.json and seg-unet-400-variants.json do the same for
the long schedule's runs and the previous generator's (e.g. didex-strength-0.9), and the aims are checked (`aims`)
on each run of every method.

Each run is what `dvc exp run -S key=value ...` does (params.yaml changed, `dvc repro evaluate`), one after the other
in a scratch git worktree of HEAD that shares this project's DVC cache, so the stages already in dvc.lock (the data,
the generator, the synthetic images, seed 0) are not redone and this workspace stays as it is. On a machine other
than the one that made the committed dvc.lock, the cache lacks that lock's outputs (another CPU gives other bits,
see the README): those stages leave the worktree's lock, so that DVC's run-cache gives this machine's own outputs of
the same code and params (from its `dvc repro`, or an earlier run of this script), and a stage this machine never ran
runs. `--out` keeps such a machine's files apart from the committed ones:

    python scripts/evidence.py [--worktree ../dgsynth-evidence] [--out DIR] [RUN ...]  # RUN: below; default all
    python scripts/evidence.py --aims        # only check our aims against the committed full runs' files
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.report.tables import load_metrics

ROOT = Path(__file__).resolve().parents[1]
SEEDS = {"train.seeds": [0, 1, 2], "det.seeds": []}  # detection has its own run
DET = {"train.seeds": [0], "train.methods": [], "det.seeds": [0, 1, 2]}
UNET_400 = {"generator.sizes.unet_steps": 400}  # the default until the generator was seen to ignore its captions
ABLATIONS = {  # DRSF without each of its parts, naive and DRSF without the filter
    "no-dfdr": {"train.methods": ["drsf"], "train.drsf.use_dfdr": False},
    "no-mdsf": {"train.methods": ["drsf"], "train.drsf.use_mdsf": False},
    "no-filter": {"train.methods": ["naive", "drsf"], "filter.enabled": False},
}
# DIDEX's strength with SD 2 depth, against the default's 0.3 (chosen for the layout on the source val split)
STRENGTH = {"train.methods": ["naive", "drsf", "didex"], "synthesize.strength": 0.9}
# source_aug's augmentation for every method (source-only too, so the filter's reference model changes with it):
# does synthetic data add anything to it?
AUGMENT = {"train.methods": ["naive", "drsf", "didex", "diga"], "train.common.augment": True}
LONGER = {"train.common.iters": 900}  # the default's 300 iterations stop before source-only converges
RUNS = {
    "det-3seeds": DET,
    "seg-3seeds": SEEDS,
    **{f"seg-{name}": {**SEEDS, **change} for name, change in ABLATIONS.items()},
    "seg-strength-0.9": {**SEEDS, **STRENGTH},
    "seg-augment": {**SEEDS, **AUGMENT},
    "seg-900-iters": {**SEEDS, **LONGER},  # every method trained three times as long
    **{f"seg-900-iters-{name}": {**SEEDS, **change, **LONGER} for name, change in ABLATIONS.items()},
    # the previous default generator, whose text-to-image UNet trained 400 steps and draws every caption word alike
    # (bench/captions.py), and what was measured with it
    "det-unet-400": {**DET, **UNET_400},
    "seg-unet-400": {**SEEDS, **UNET_400},
    **{f"seg-unet-400-{name}": {**SEEDS, **change, **UNET_400} for name, change in ABLATIONS.items()},
    "seg-unet-400-strength-0.9": {**SEEDS, **STRENGTH, **UNET_400},
    "seg-unet-400-augment": {**SEEDS, **AUGMENT, **UNET_400},
    "seg-unet-400-900-iters": {**SEEDS, **LONGER, **UNET_400},
}
FULL = "seg-3seeds"  # the reference of the variants named seg-<change>
PREVIOUS = "seg-unet-400"  # the reference of those named seg-unet-400-<change>
LONG = "seg-900-iters"  # the reference of those named seg-900-iters-<change>
# the runs of every method, each with its own table and aims
FULLS = (FULL, PREVIOUS, LONG, "seg-unet-400-900-iters")
VARIANTS = {FULL: "seg-variants.json", PREVIOUS: "seg-unet-400-variants.json",
            LONG: "seg-900-iters-variants.json"}  # each reference's table of variants
BASELINES = ("source", "source_aug")  # every other method of a run trains on synthetic images too


def sh(*cmd: str, cwd: Path, env: dict | None = None) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def set_params(path: Path, overrides: dict) -> None:
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for name in parents:
            section = section[name]
        section[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help=f"some of: {', '.join(RUNS)} (default: all)")
    parser.add_argument("--worktree", type=Path, default=ROOT.parent / "dgsynth-evidence")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "evidence", help="folder of the runs' files")
    parser.add_argument("--aims", action="store_true", help="only print the aims' check of the full runs' files")
    args = parser.parse_args()
    out = args.out.resolve()
    if args.aims:
        print_aims(out)
        return
    unknown = [name for name in args.runs if name not in RUNS]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r}: use some of {', '.join(RUNS)}")
    tree = args.worktree.resolve()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(tree), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    if not tree.exists():
        sh("git", "worktree", "add", "--detach", str(tree), head, cwd=ROOT)
        sh("dvc", "config", "--local", "cache.dir", str(ROOT / ".dvc" / "cache"), cwd=tree, env=env)
    sh("git", "checkout", "--quiet", "--force", "--detach", head, cwd=tree)  # a worktree made earlier: today's code
    kept = forget_missing(tree, env)
    if kept:  # the outputs of the stages left in dvc.lock, which are all in the cache
        sh("dvc", "checkout", "--quiet", *kept, cwd=tree, env=env)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.runs or list(RUNS):
        start = time.perf_counter()
        sh("git", "checkout", "--", "params.yaml", cwd=tree)  # the run before changed it
        set_params(tree / "params.yaml", RUNS[name])
        sh("dvc", "repro", "evaluate", cwd=tree, env=env)
        shutil.copyfile(tree / "reports" / "metrics.json", out / f"{name}.json")
        shutil.copyfile(tree / "reports" / name.split("-")[0] / "scores.csv", out / f"{name}-scores.csv")
        print(f"{name}: {out / f'{name}.json'} in {time.perf_counter() - start:.0f} s", flush=True)
    for full, table in VARIANTS.items():
        if (out / f"{full}.json").is_file():
            (out / table).write_text(json.dumps(variants(out, full), indent=1) + "\n")
    print_aims(out)


def forget_missing(tree: Path, env: dict) -> list[str]:
    """Remove from the worktree's dvc.lock the stages whose outputs are not in the DVC cache; the stages left.

    DVC looks in its run-cache only for a stage whose lock entry no longer matches its code and params: with the
    commit's entry in place, a stage whose outputs were made on another machine (or not pulled) would run again.
    """
    status = subprocess.run(["dvc", "status", "--json"], cwd=tree, env=env, capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    missing = [stage for stage, changes in json.loads(status or "{}").items()
               if any("not in cache" in change.get("changed outs", {}).values()
                      for change in changes if isinstance(change, dict))]  # fmt: skip
    path = tree / "dvc.lock"
    lock = yaml.safe_load(path.read_text())
    if missing:
        for stage in missing:
            del lock["stages"][stage]
        path.write_text(yaml.safe_dump(lock, sort_keys=False))
        print(f"{len(missing)} stages of dvc.lock have outputs that are not in the DVC cache (made on another machine, "
              f"or not pulled), e.g. {missing[0]}: they come from DVC's run-cache where this machine made them with "
              "the same code and params, and run otherwise", flush=True)  # fmt: skip
    return list(lock["stages"])


def print_aims(out: Path) -> None:
    """The aims' check of each full run made so far."""
    for name in FULLS:
        if (out / f"{name}.json").is_file():
            print(f"{name}:", *aims(load_metrics(out / f"{name}.json")["seg"]), sep="\n  ")


def aims(seg: dict) -> list[str]:
    """Our three aims on the target mean, each with its numbers and whether it is met: the best synthetic-data
    method at least +10 over source-only; every one above source_aug; DRSF above naive by more than two standard
    deviations (the larger of the two methods' std over seeds)."""
    mean = {m: seg[m]["target_mean"]["mIoU"] for m in seg}
    std = {m: seg[m]["target_mean"]["mIoU_std"] for m in seg}
    synthetic = [m for m in seg if m not in BASELINES]
    best = max(synthetic, key=mean.get)
    below = [m for m in synthetic if mean[m] <= mean["source_aug"]]
    gap, spread = mean["drsf"] - mean["naive"], 2 * max(std["drsf"], std["naive"])
    verdict = {True: "met", False: "NOT met"}
    return [f"best method {best}: {mean[best] - mean['source']:+.1f} over source-only (aim +10): "
            f"{verdict[mean[best] - mean['source'] >= 10]}",
            f"above source_aug ({mean['source_aug']:.1f}): {verdict[not below]}"
            + (f" (below it: {', '.join(f'{m} {mean[m]:.1f}' for m in below)})" if below else ""),
            f"drsf - naive = {gap:+.1f}, two stds {spread:.1f}: {verdict[gap > spread]}"]  # fmt: skip


def reference(name: str) -> tuple[str, str]:
    """The full run a variant `<full run>-<change>` is compared with (the one made with the same generator and
    schedule; the longest such name: seg-900-iters-no-dfdr is seg-900-iters's), or seg-3seeds for `seg-<change>`,
    and its change."""
    full = max((f for f in VARIANTS if name.startswith(f"{f}-")), key=len, default=None)
    if full is None:
        return FULL, name.removeprefix("seg-")
    return full, name.removeprefix(f"{full}-")


def variants(out: Path, full: str) -> dict:
    """Source-only, then each changed method of the variants of `full` made so far after the full method's row,
    in the full run's order, as rows `<method>-<change>`."""
    reference_rows = load_metrics(out / f"{full}.json")["seg"]
    changed = {}
    for name in RUNS:
        of, change = reference(name)
        if of == full and name.startswith("seg-") and name not in FULLS and (out / f"{name}.json").is_file():
            for method, scores in load_metrics(out / f"{name}.json")["seg"].items():
                if method not in BASELINES:
                    changed.setdefault(method, {})[f"{method}-{change}"] = scores
    table = {"source": reference_rows["source"]}
    for method in reference_rows:
        if method in changed:
            table |= {method: reference_rows[method], **changed[method]}
    return {"seg": table}


if __name__ == "__main__":
    main()
