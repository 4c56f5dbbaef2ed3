"""Cityscapes label space: the 19 train classes, their colours, and the official labelId -> trainId mapping.

Every label file the pipeline writes holds trainIds (0..18) with 255 for 'ignore'; readers of other formats map to
this space with a lookup table built by `lookup_table`.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255

CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
TRAIN_ID = {name: i for i, name in enumerate(CLASSES)}

PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip

# cityscapesScripts labels.py: every labelId 0..33 with its trainId (255 = ignored in training). The license plate
# has id -1, which a uint8 label image stores as 255.
CITYSCAPES_ID_TO_TRAIN_ID = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2, 12: 3, 13: 4,
    14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18, 255: 255,
}  # fmt: skip


def lookup_table(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """A lookup table from a mapping of known values; values the mapping does not know map to -1."""
    table = np.full(size, -1, dtype=np.int16)
    for src, dst in mapping.items():
        table[src] = dst
    return table


def colorize(label: np.ndarray) -> np.ndarray:
    """An RGB picture of a trainId label; 'ignore' is black."""
    rgb = np.zeros((*label.shape, 3), dtype=np.uint8)
    known = label < len(CLASSES)
    rgb[known] = PALETTE[label[known]]
    return rgb
