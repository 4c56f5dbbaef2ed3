"""The data-set readers, each on a tiny tree written here in its real layout: rows, converted labels and errors."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from PIL import Image

from pipeline.errors import InputError
from pipeline.manifest import COLUMNS, read_manifest, write_manifest
from pipeline.readers import READERS, read_split
from pipeline.readers.mapillary import CLASSES as VISTAS_CLASSES

W, H = 8, 6  # every test image is 8x6; a label holds one source value per row
CITYSCAPES_SRC = [7, 8, 26, 33, 0, 255]  # road, sidewalk, car, bicycle, unlabeled, license plate (-1)
CITYSCAPES_TRAIN = [0, 1, 13, 18, 255, 255]


def stripes(values: list[int], dtype=np.uint8) -> np.ndarray:
    """A WxH label whose row r holds values[r]."""
    return np.repeat(np.array(values, dtype=dtype)[:, None], W, axis=1)


def write_image(path: Path, seed: int, size: tuple[int, int] = (W, H)) -> None:
    """A random RGB picture (PNG or JPEG by suffix), different per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_grey(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label).save(path)


def write_palette(path: Path, label: np.ndarray) -> None:
    """A palette PNG whose colours differ from its indices, so reading colours would give wrong values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (label.shape[1], label.shape[0]), label.astype(np.uint8).tobytes())
    image.putpalette([(i * 37 + 11) % 256 for i in range(256 * 3)])
    image.save(path)


def write_synthia(path: Path, label: np.ndarray) -> None:
    """A SYNTHIA label: 16-bit, class id in the red channel, an instance id in green (stored as BGR by OpenCV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = np.zeros((*label.shape, 3), dtype=np.uint16)
    bgr[..., 2], bgr[..., 1] = label, 7
    assert cv2.imwrite(str(path), bgr)


@dataclass
class Case:
    """One layout: where an id's image and label go (relative to the root), and what the rows should say."""

    fmt: str
    split: str
    ids: list[str]  # sorted
    paths: Callable[[str], tuple[str, str]]  # id -> (image, label)
    write_label: Callable[[Path, np.ndarray], None]
    src: list[int]
    train: list[int]
    city: Callable[[str], str]  # id -> city
    condition: str
    options: dict = field(default_factory=dict)

    def build(self, root: Path, src: list[int] | None = None) -> None:
        for seed, key in enumerate(reversed(self.ids)):  # written in reverse: the reader must sort
            image, label = self.paths(key)
            write_image(root / image, seed)
            self.write_label(root / label, stripes(src or self.src, np.uint16 if self.fmt == "synthia" else np.uint8))

    def read(self, root: Path, out: Path, **kwargs) -> list[dict]:
        return read_split(self.fmt, root, self.split, out, **{**self.options, **kwargs})


CASES = [
    Case("cityscapes", "val", ["aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000313"],
         lambda k: (f"leftImg8bit/val/{k.split('_')[0]}/{k}_leftImg8bit.png",
                    f"gtFine/val/{k.split('_')[0]}/{k}_gtFine_labelIds.png"),
         write_grey, CITYSCAPES_SRC, CITYSCAPES_TRAIN, lambda k: k.split("_")[0], "clear"),
    Case("gta5", "train", ["00001", "00002", "00010"], lambda k: (f"images/{k}.png", f"labels/{k}.png"),
         write_palette, CITYSCAPES_SRC, CITYSCAPES_TRAIN, lambda k: "gta5", "clear"),
    Case("synthia", "train", ["0000000", "0000001", "0000002"], lambda k: (f"RGB/{k}.png", f"GT/LABELS/{k}.png"),
         write_synthia, [3, 1, 8, 21, 0, 22], [0, 10, 13, 3, 255, 255], lambda k: "synthia", "clear"),
    Case("acdc", "train", ["GOPR0475_frame_000041", "GOPR0475_frame_000042", "GP010475_frame_000001"],
         lambda k: (f"rgb_anon/fog/train/{k.split('_')[0]}/{k}_rgb_anon.png",
                    f"gt/fog/train/{k.split('_')[0]}/{k}_gt_labelIds.png"),
         write_grey, CITYSCAPES_SRC, CITYSCAPES_TRAIN, lambda k: "acdc", "fog", {"condition": "fog"}),
    Case("bdd100k", "val", ["7d06fefd-f7be05a6", "7d128593-0ccfea4c", "8d1e1f3c-1a2b3c4d"],
         lambda k: (f"images/10k/val/{k}.jpg", f"labels/sem_seg/masks/val/{k}.png"),
         write_grey, [0, 1, 13, 18, 255, 10], [0, 1, 13, 18, 255, 10], lambda k: "bdd100k", "unknown"),
    # Mapillary: Road, Sidewalk, Car, Unlabeled, Parking (ignored), Sky; split "val" is an alias of "validation"
    Case("mapillary", "val", ["-0a1b2c", "AbC123", "zz9"],
         lambda k: (f"validation/images/{k}.jpg", f"validation/v1.2/labels/{k}.png"),
         write_palette, [13, 15, 55, 65, 10, 27], [0, 1, 13, 255, 255, 10], lambda k: "mapillary", "unknown"),
    Case("mapillary", "training", ["a", "b"], lambda k: (f"training/images/{k}.jpg", f"training/labels/{k}.png"),
         write_palette, [13, 15, 55, 65, 10, 27], [0, 1, 13, 255, 255, 10], lambda k: "mapillary", "unknown",
         {"version": "v1.0"}),
]  # fmt: skip
CASE_IDS = [f"{c.fmt}-{c.options.get('version', c.split)}" for c in CASES]
CITYSCAPES = CASES[0]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reads_layout(case: Case, tmp_path: Path) -> None:
    root, out = tmp_path / "data", tmp_path / "out"
    case.build(root)
    rows = case.read(root, out)
    assert [r["id"] for r in rows] == case.ids
    for row in rows:
        image = root / case.paths(row["id"])[0]
        assert set(row) == set(COLUMNS) - {"domain"}
        assert row["image"] == str(image.resolve())
        assert row["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
        assert (row["width"], row["height"]) == (W, H)
        assert row["label"] == f"labels/{case.split}/{row['id']}.png"
        converted = np.array(Image.open(out / row["label"]))
        assert converted.dtype == np.uint8 and converted.tolist() == stripes(case.train).tolist()
        assert (row["dataset"], row["split"], row["depth"], row["boxes"]) == (case.fmt, case.split, None, None)
        assert (row["city"], row["condition"]) == (case.city(row["id"]), case.condition)
    assert len({r["sha256"] for r in rows}) == len(rows)
    assert [r["id"] for r in case.read(root, tmp_path / "limited", limit=2)] == case.ids[:2]


def test_gta5_split_mat(tmp_path: Path) -> None:
    gta5 = CASES[1]
    gta5.build(tmp_path)
    scipy.io.savemat(tmp_path / "split.mat", {"trainIds": np.array([[10], [1]]), "valIds": np.array([[2]]),
                                              "testIds": np.array([[2]])})  # fmt: skip
    assert [r["id"] for r in read_split("gta5", tmp_path, "train", tmp_path / "out")] == ["00001", "00010"]
    assert [r["id"] for r in read_split("gta5", tmp_path, "val", tmp_path / "out")] == ["00002"]
    assert len(read_split("gta5", tmp_path, "all", tmp_path / "out")) == 3


def write_voc(root: Path, name: str, objects: list[tuple], size: tuple[int, int] = (W, H)) -> None:
    voc = root / "VOC2007"
    write_image(voc / "JPEGImages" / f"{name}.jpg", len(name))
    parts = "".join(f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                    f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>" for c, x1, y1, x2, y2 in objects)
    (voc / "Annotations").mkdir(parents=True, exist_ok=True)
    (voc / "Annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{parts}</annotation>")  # fmt: skip


def build_dwd(root: Path, car_class: str = "car") -> Path:
    """A daytime_foggy domain with three images, listed out of order in test.txt."""
    root = root / "daytime_foggy"
    write_voc(root, "b_frame", [(car_class, 1, 2, 5, 6), ("person", 3, 1, 4, 9)])  # the person box is clipped
    write_voc(root, "a_frame", [("bus", 2, 2, 8, 6)])
    write_voc(root, "c_frame", [])
    split_file = root / "VOC2007" / "ImageSets" / "Main" / "test.txt"
    split_file.parent.mkdir(parents=True)
    split_file.write_text("c_frame\nb_frame\na_frame\n")
    return root


def test_dwd(tmp_path: Path) -> None:
    root = build_dwd(tmp_path)
    rows = read_split("dwd", root, "test", tmp_path / "out")
    assert [r["id"] for r in rows] == ["a_frame", "b_frame", "c_frame"]
    assert rows[0]["boxes"] == [{"label": "bus", "x1": 1.0, "y1": 1.0, "x2": 8.0, "y2": 6.0}]
    assert rows[1]["boxes"] == [{"label": "car", "x1": 0.0, "y1": 1.0, "x2": 5.0, "y2": 6.0},
                                {"label": "person", "x1": 2.0, "y1": 0.0, "x2": 4.0, "y2": 6.0}]  # fmt: skip
    assert rows[2]["boxes"] == []
    image = root / "VOC2007" / "JPEGImages" / "b_frame.jpg"
    assert rows[1]["image"] == str(image.resolve())
    assert rows[1]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert {(r["label"], r["depth"], r["dataset"], r["city"], r["condition"], r["width"], r["height"]) for r in rows} \
        == {(None, None, "dwd", "dwd", "daytime_foggy", W, H)}  # fmt: skip
    other = read_split("dwd", root, "test", tmp_path / "out", limit=1, condition="fog")
    assert [(r["id"], r["condition"]) for r in other] == [("a_frame", "fog")]


def test_round_trip_through_manifest(tmp_path: Path) -> None:
    root, out = tmp_path / "data", tmp_path / "domain"
    CITYSCAPES.build(root)
    rows = [{**row, "domain": "cs"} for row in read_split("cityscapes", root, "val", out)]
    rows += [{**row, "domain": "fog"} for row in read_split("dwd", build_dwd(tmp_path), "test", out)]
    write_manifest(rows, out / "manifest.parquet")
    frame = read_manifest(out / "manifest.parquet")
    assert list(frame["id"]) == [r["id"] for r in rows]
    assert all(Path(p).is_file() for p in frame["label"][:3]) and frame["label"][3:].isna().all()
    assert Path(frame["label"][0]) == out / "labels" / "val" / "aachen_000000_000019.png"
    assert frame["image"][0] == rows[0]["image"] and frame["sha256"][0] == rows[0]["sha256"]
    assert [dict(b) for b in frame["boxes"][4]][0] == {"label": "car", "x1": 0.0, "y1": 1.0, "x2": 5.0, "y2": 6.0}


# ---- errors: each names the offending file (or value) and says the fix


@contextlib.contextmanager
def raises(*fragments: str) -> Iterator[None]:
    """Check that the block raises an InputError whose message holds every fragment."""
    with pytest.raises(InputError) as info:
        yield
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_missing_root(fmt: str, tmp_path: Path) -> None:
    options = {"condition": "fog"} if fmt == "acdc" else {}
    with raises("no_such_root", "data set root not found", "data.domains.<name>.root", "params.yaml",
                READERS[fmt].expects):
        read_split(fmt, tmp_path / "no_such_root", "train", tmp_path / "out", **options)


@pytest.mark.parametrize("case", [CITYSCAPES, CASES[2]], ids=["cityscapes", "synthia"])
def test_label_of_wrong_size(case: Case, tmp_path: Path) -> None:
    case.build(tmp_path)
    image, label = case.paths(case.ids[1])
    case.write_label(tmp_path / label, np.zeros((H, W - 1), np.uint16 if case.fmt == "synthia" else np.uint8))
    with raises(Path(label).name, "label is 7x6 but image is 8x6", Path(image).name, "re-extract both"):
        case.read(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("case", [CITYSCAPES, CASES[4]], ids=["cityscapes-png", "bdd100k-jpg"])
def test_unreadable_image(case: Case, tmp_path: Path) -> None:
    case.build(tmp_path)
    image = tmp_path / case.paths(case.ids[0])[0]
    image.write_bytes(b"this is not an image at all")
    with raises(image.name, "not an image that can be read", "re-download or re-extract it"):
        case.read(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(("case", "value"), [(c, v) for c, v in zip(CASES, [200, 34, 40, 200, 19, 66, 66])],
                         ids=CASE_IDS)  # fmt: skip
def test_unknown_label_value(case: Case, value: int, tmp_path: Path) -> None:
    case.build(tmp_path, src=[value, *case.src[1:]])
    label = Path(case.paths(case.ids[0])[1]).name
    with raises(label, f"{W} pixels hold values", f": {value}", "check that the label folder is the right one"):
        case.read(tmp_path, tmp_path / "out")


def test_colour_label_is_refused(tmp_path: Path) -> None:
    CITYSCAPES.build(tmp_path)
    label = tmp_path / CITYSCAPES.paths(CITYSCAPES.ids[0])[1]
    write_image(label, 0)
    with raises(label.name, "RGB image, not one channel of class ids", "not the colour pictures"):
        CITYSCAPES.read(tmp_path, tmp_path / "out")


def test_missing_label_names_the_image(tmp_path: Path) -> None:
    CITYSCAPES.build(tmp_path)
    image, label = CITYSCAPES.paths(CITYSCAPES.ids[2])
    (tmp_path / label).unlink()
    with raises(Path(image).name, "no label bochum_000000_000313_gtFine_labelIds.png", "extract the labels"):
        CITYSCAPES.read(tmp_path, tmp_path / "out")


def test_unknown_split_folder_lists_the_splits(tmp_path: Path) -> None:
    CITYSCAPES.build(tmp_path)
    with raises("leftImg8bit/test", "folder not found", "holds val"):
        read_split("cityscapes", tmp_path, "test", tmp_path / "out")


@pytest.mark.parametrize(("fmt", "split", "fragments"), [
    ("gta5", "val", ["needs GTA5's split.mat", "use split 'train'"]),
    ("synthia", "val", ["unknown split 'val'", "train, all", "no official split"]),
    ("mapillary", "testing", ["unknown split 'testing'", "training, validation"]),
])  # fmt: skip
def test_undefined_split(fmt: str, split: str, fragments: list[str], tmp_path: Path) -> None:
    next(c for c in CASES if c.fmt == fmt).build(tmp_path)
    with raises(*fragments):
        read_split(fmt, tmp_path, split, tmp_path / "out")


def test_unknown_dwd_class(tmp_path: Path) -> None:
    root = build_dwd(tmp_path, car_class="dog")
    with raises("b_frame.xml", "object 0 has class 'dog'", "bus, bike, car", "remove the object"):
        read_split("dwd", root, "test", tmp_path / "out")


def test_dwd_size_mismatch_and_missing_split(tmp_path: Path) -> None:
    root = build_dwd(tmp_path)
    write_voc(root, "a_frame", [], size=(W * 2, H))
    with raises("a_frame.xml", "annotation says 16x6 but the image is 8x6"):
        read_split("dwd", root, "test", tmp_path / "out")
    with raises("train.txt", "no list of split 'train'", "use one of the splits: test"):
        read_split("dwd", root, "train", tmp_path / "out")


@pytest.mark.parametrize(("fmt", "options", "fragments"), [
    ("cityscapes", {"colour": True}, ["unknown option 'colour'", "options cityscapes knows: none"]),
    ("acdc", {"condition": "fog", "weather": "fog"}, ["unknown option 'weather'", "knows: condition"]),
    ("mapillary", {"version": "v2.0"}, ["unknown version option 'v2.0'", "v1.2, v1.0"]),
    ("acdc", {}, ["the condition option is required", "fog, night, rain, snow", "params.yaml"]),
    ("acdc", {"condition": "hail"}, ["unknown condition option 'hail'", "fog, night, rain, snow"]),
])  # fmt: skip
def test_bad_options(fmt: str, options: dict, fragments: list[str], tmp_path: Path) -> None:
    with raises(*fragments):
        read_split(fmt, tmp_path, "train", tmp_path / "out", **options)


def test_unknown_format(tmp_path: Path) -> None:
    with raises("'kitti'", "unknown data set format", "cityscapes, gta5, synthia, acdc, bdd100k, mapillary, dwd"):
        read_split("kitti", tmp_path, "train", tmp_path / "out")


def test_vistas_table_has_the_66_classes() -> None:
    assert len(VISTAS_CLASSES) == 66 and VISTAS_CLASSES[13] == "Road" and VISTAS_CLASSES[65] == "Unlabeled"
