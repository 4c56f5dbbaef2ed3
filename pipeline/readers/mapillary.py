"""Mapillary Vistas v1.2 (Neuhold et al., ICCV 2017) as extracted from its zip: `root/<splitdir>/images/<key>.jpg`
with `root/<splitdir>/v1.2/labels/<key>.png` (option `version`: "v1.2", the default, or "v1.0", whose labels are in
`root/<splitdir>/labels/`), id = key. Splits "training" and "validation" ("train" and "val" are aliases; the split
column and the label folder keep the name given). Labels are palette PNGs whose indices are the 66 classes in the order
of config_v1.2.json (assumed to be the same order in v1.0); values above 65 are errors. `CLASSES_TO_CITYSCAPES` maps
them to the 19 Cityscapes classes, following the Cityscapes class definitions as the common DG mapping does; the
debatable choices, marked (?) in the table: Parking -> ignore (Cityscapes ignores its own 'parking'); Bike Lane,
Lane Marking - Crosswalk/General, Manhole, Pothole, Catch Basin -> road (they are part of the road surface, as
Cityscapes annotates them); Street Light and Traffic Sign Frame -> pole; Traffic Sign (Back) -> ignore; Sand ->
terrain (Cityscapes' terrain includes sand). Every other class (animals, barriers, bridges, billboards, water, snow,
caravans, trailers, the ego vehicle, ...) is ignored, like their Cityscapes counterparts. Weather is mixed, so the
condition column is "unknown".
"""

from __future__ import annotations

from pathlib import Path

from pipeline.labels import IGNORE, TRAIN_ID, lookup_table
from pipeline.readers.common import Converted, LabelFormat, Reader, choose, pair, scan, segmentation_rows

NAME = "mapillary"
SPLITS = {"training": "training", "validation": "validation", "train": "training", "val": "validation"}
LABEL_FOLDERS = {"v1.2": "v1.2/labels", "v1.0": "labels"}
CLASSES = (
    "Bird", "Ground Animal", "Curb", "Fence", "Guard Rail", "Barrier", "Wall", "Bike Lane", "Crosswalk - Plain",
    "Curb Cut", "Parking", "Pedestrian Area", "Rail Track", "Road", "Service Lane", "Sidewalk", "Bridge", "Building",
    "Tunnel", "Person", "Bicyclist", "Motorcyclist", "Other Rider", "Lane Marking - Crosswalk",
    "Lane Marking - General", "Mountain", "Sand", "Sky", "Snow", "Terrain", "Vegetation", "Water", "Banner", "Bench",
    "Bike Rack", "Billboard", "Catch Basin", "CCTV Camera", "Fire Hydrant", "Junction Box", "Mailbox", "Manhole",
    "Phone Booth", "Pothole", "Street Light", "Pole", "Traffic Sign Frame", "Utility Pole", "Traffic Light",
    "Traffic Sign (Back)", "Traffic Sign (Front)", "Trash Can", "Bicycle", "Boat", "Bus", "Car", "Caravan",
    "Motorcycle", "On Rails", "Other Vehicle", "Trailer", "Truck", "Wheeled Slow", "Car Mount", "Ego Vehicle",
    "Unlabeled",
)  # fmt: skip
CLASSES_TO_CITYSCAPES = {
    "Road": "road", "Service Lane": "road", "Crosswalk - Plain": "road",
    "Bike Lane": "road", "Lane Marking - Crosswalk": "road", "Lane Marking - General": "road",  # (?)
    "Manhole": "road", "Pothole": "road", "Catch Basin": "road",  # (?)
    "Sidewalk": "sidewalk", "Curb": "sidewalk", "Curb Cut": "sidewalk", "Pedestrian Area": "sidewalk",
    "Building": "building", "Wall": "wall", "Fence": "fence",
    "Pole": "pole", "Utility Pole": "pole", "Street Light": "pole", "Traffic Sign Frame": "pole",  # (?) last two
    "Traffic Light": "traffic light", "Traffic Sign (Front)": "traffic sign",
    "Vegetation": "vegetation", "Terrain": "terrain", "Sand": "terrain",  # (?) Sand
    "Sky": "sky", "Person": "person", "Bicyclist": "rider", "Motorcyclist": "rider", "Other Rider": "rider",
    "Car": "car", "Truck": "truck", "Bus": "bus", "On Rails": "train", "Motorcycle": "motorcycle",
    "Bicycle": "bicycle",
}  # fmt: skip
TABLE = lookup_table({i: TRAIN_ID[CLASSES_TO_CITYSCAPES[name]] if name in CLASSES_TO_CITYSCAPES else IGNORE
                      for i, name in enumerate(CLASSES)})  # fmt: skip


def read(root: Path, split: str, out_dir: Path, limit: int | None, workers: int, version: str) -> Converted:
    folder = root / SPLITS[choose(split, SPLITS, root, "split")]
    label_folder = folder / LABEL_FOLDERS[choose(version, LABEL_FOLDERS, root, "version option")]
    pairs = pair(scan(folder / "images", ".jpg"), label_folder, ".png")
    labels = LabelFormat(TABLE, f"Mapillary Vistas {version}")
    return segmentation_rows(NAME, split, out_dir, pairs, limit, workers, labels=labels, city=NAME, condition="unknown")


READER = Reader(read, expects="training/ and validation/", options={"version": "v1.2"})
