"""ACDC (Sakaridis et al., ICCV 2021), one adverse condition per domain, as extracted from rgb_anon_trainvaltest.zip
and gt_trainval.zip into one root: `root/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png` with
`root/gt/<condition>/<split>/<sequence>/<name>_gt_labelIds.png` (e.g. name GOPR0475_frame_000041), id = name. The
required option `condition` is one of fog, night, rain, snow and fills the condition column; the city column is
"acdc". Labels are Cityscapes labelIds, mapped with cityscapesScripts' table like Cityscapes. Splits train and val
(the test labels are not public; the *_ref daytime reference folders have no labels).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.readers.common import LABEL_IDS, Converted, LabelFormat, Reader, choose, pair, scan, segmentation_rows

NAME = "acdc"
CONDITIONS = ("fog", "night", "rain", "snow")
LABELS = LabelFormat(LABEL_IDS, "ACDC (Cityscapes labelIds)")


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int, condition: str | None) -> Converted:
    condition = choose(condition, CONDITIONS, root, "condition option", "an option of the domain in params.yaml")
    images = scan(root / "rgb_anon" / condition / split, "_rgb_anon.png")
    pairs = pair(images, root / "gt" / condition / split, "_gt_labelIds.png")
    return segmentation_rows(NAME, split, out_dir, pairs, limit, workers, labels=LABELS, city=NAME, condition=condition)


READER = Reader(read, expects="rgb_anon/ and gt/", options={"condition": None})
