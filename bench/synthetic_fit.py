"""Measure: do the synthetic images still fit the labels and boxes they reuse? The source-only models scored on the
kept synthetic images (img2img/depth2img rows keep the source's label and boxes) against the source validation split.

    python bench/synthetic_fit.py [--seed 0]

Uses models/seg/source-s<seed> (mIoU) and models/det/source-s<seed> (mAP50), data/filtered/kept.parquet and the
source's val manifest; prints a table and writes reports/bench/synthetic_fit.json. A synthetic score far below the
real one means the reused ground truth no longer matches what the image shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from pipeline.det.evaluate import scorer as det_scorer
from pipeline.seg.evaluate import scorer as seg_scorer

OUT = Path("reports/bench/synthetic_fit.json")
KEPT = Path("data/filtered/kept.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = yaml.safe_load(Path("params.yaml").read_text())["data"]["source"]
    real = Path("data/domains") / source / "val.parquet"
    report = {"seed": args.seed, "synthetic": str(KEPT), "real": str(real)}
    print(f"{'model':<24}{'score':>8}{'real val':>10}{'synthetic':>11}{'ratio':>7}")
    for task, scorer, score in (("seg", seg_scorer, "mIoU"), ("det", det_scorer, "mAP50")):
        folder = Path("models") / task / f"source-s{args.seed}"
        if not (folder / "model.pth").is_file():
            continue
        evaluate = scorer(folder)
        values = {name: evaluate(path, 8, 0, f"{task} on {name}").scores[score] for name, path in
                  (("real", real), ("synthetic", KEPT))}  # fmt: skip
        report[task] = {score: values, "ratio": values["synthetic"] / values["real"]}
        print(f"{str(folder):<24}{score:>8}{values['real']:>10.1f}{values['synthetic']:>11.1f}"
              f"{values['synthetic'] / values['real']:>7.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
