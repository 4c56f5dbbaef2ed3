"""The data-set readers, each on a tiny tree written here in its real layout: rows, converted labels, notes, errors,
and the same bytes with one or two worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline import parallel
from pipeline.domains import build_domain
from pipeline.errors import InputError
from pipeline.manifest import COLUMNS, read_manifest, write_manifest
from pipeline.readers import READERS, read_split
from pipeline.readers.mapillary import CLASSES as VISTAS_CLASSES
from stages.cli import app

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
            self.write_label(root / label, self.label(src or self.src))

    def label(self, src: list[int], scale: int = 1) -> np.ndarray:
        """A label of these stripes in the format's dtype, each pixel repeated `scale` x `scale` times."""
        label = stripes(src, np.uint16 if self.fmt == "synthia" else np.uint8)
        return np.kron(label, np.ones((scale, scale), label.dtype))

    def read(self, root: Path, out: Path, **kwargs) -> list[dict]:
        return read_split(self.fmt, root, self.split, out, **{**self.options, **kwargs}).rows


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
CITYSCAPES, GTA5, SYNTHIA = CASES[:3]
IGNORING = {"gta5": 34, "synthia": 40}  # the formats whose reference converters set unknown ids to ignore, and one


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
    GTA5.build(tmp_path)
    scipy.io.savemat(tmp_path / "split.mat", {"trainIds": np.array([[10], [1]]), "valIds": np.array([[2]]),
                                              "testIds": np.array([[2]])})  # fmt: skip
    assert [r["id"] for r in read_split("gta5", tmp_path, "train", tmp_path / "out").rows] == ["00001", "00010"]
    assert [r["id"] for r in read_split("gta5", tmp_path, "val", tmp_path / "out").rows] == ["00002"]
    assert len(read_split("gta5", tmp_path, "all", tmp_path / "out").rows) == 3


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
    rows, notes = read_split("dwd", root, "test", tmp_path / "out")
    assert [r["id"] for r in rows] == ["a_frame", "b_frame", "c_frame"] and notes == []
    assert rows[0]["boxes"] == [{"label": "bus", "x1": 1.0, "y1": 1.0, "x2": 8.0, "y2": 6.0}]
    assert rows[1]["boxes"] == [{"label": "car", "x1": 0.0, "y1": 1.0, "x2": 5.0, "y2": 6.0},
                                {"label": "person", "x1": 2.0, "y1": 0.0, "x2": 4.0, "y2": 6.0}]  # fmt: skip
    assert rows[2]["boxes"] == []
    image = root / "VOC2007" / "JPEGImages" / "b_frame.jpg"
    assert rows[1]["image"] == str(image.resolve())
    assert rows[1]["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert {(r["label"], r["depth"], r["dataset"], r["city"], r["condition"], r["width"], r["height"]) for r in rows} \
        == {(None, None, "dwd", "dwd", "daytime_foggy", W, H)}  # fmt: skip
    other = read_split("dwd", root, "test", tmp_path / "out", limit=1, condition="fog").rows
    assert [(r["id"], r["condition"]) for r in other] == [("a_frame", "fog")]


def test_round_trip_through_manifest(tmp_path: Path) -> None:
    root, out = tmp_path / "data", tmp_path / "domain"
    CITYSCAPES.build(root)
    rows = [{**row, "domain": "cs"} for row in read_split("cityscapes", root, "val", out).rows]
    rows += [{**row, "domain": "fog"} for row in read_split("dwd", build_dwd(tmp_path), "test", out).rows]
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


def cut_in_half(path: Path, seed: int) -> None:
    """Write a 64x48 picture (PNG or JPEG by suffix) at `path` and cut its file after half of its bytes."""
    write_image(path, seed, (64, 48))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as image:
        assert image.size == (64, 48)  # the header still reads: a check of the header alone lets it through


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_image_cut_short(case: Case, tmp_path: Path) -> None:
    case.build(tmp_path)
    image, label = (tmp_path / p for p in case.paths(case.ids[1]))
    case.write_label(label, case.label(case.src, scale=8))  # a label that fits the 64x48 image
    cut_in_half(image, 1)
    with raises(image.name, "the image does not decode: it is cut short or corrupt", "truncated",
                "re-download or re-extract it, or remove it"):
        case.read(tmp_path, tmp_path / "out")


def test_dwd_image_cut_short_or_empty(tmp_path: Path) -> None:
    root = build_dwd(tmp_path)
    image = root / "VOC2007" / "JPEGImages" / "b_frame.jpg"
    cut_in_half(image, 0)
    with raises("b_frame.jpg", "the image does not decode: it is cut short or corrupt", "re-download"):
        read_split("dwd", root, "test", tmp_path / "out")
    image.write_bytes(b"")
    with raises("b_frame.jpg", "the image file is empty (0 bytes)", "re-download or re-extract it, or remove it"):
        read_split("dwd", root, "test", tmp_path / "out")


@pytest.mark.parametrize("case", [CITYSCAPES, CASES[5]], ids=["cityscapes-png", "mapillary-jpg"])
def test_empty_image(case: Case, tmp_path: Path) -> None:
    case.build(tmp_path)
    image = tmp_path / case.paths(case.ids[2])[0]
    image.write_bytes(b"")
    with raises(image.name, "the image file is empty (0 bytes)", "re-download or re-extract it, or remove it"):
        case.read(tmp_path, tmp_path / "out")


ERRING = [(c, v) for c, v in zip(CASES, [200, 34, 40, 200, 19, 66, 66]) if c.fmt not in IGNORING]


@pytest.mark.parametrize(("case", "value"), ERRING, ids=[f"{c.fmt}-{c.split}" for c, _ in ERRING])
def test_unknown_label_value(case: Case, value: int, tmp_path: Path) -> None:
    case.build(tmp_path, src=[value, *case.src[1:]])
    label = Path(case.paths(case.ids[0])[1]).name
    with raises(label, f"{W} pixels hold values", f": {value}", "check that the label folder is the right one"):
        case.read(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("case", [GTA5, SYNTHIA], ids=["gta5", "synthia"])
def test_unknown_ids_become_ignore(case: Case, tmp_path: Path) -> None:
    """As DAFormer's converters: ids outside the official table are ignored, counted in one note, not an error."""
    case.build(tmp_path)
    first, second = (tmp_path / case.paths(key)[1] for key in case.ids[:2])
    unknown = [IGNORING[case.fmt], 1000 if case.fmt == "synthia" else 254]
    case.write_label(first, case.label([unknown[0], *case.src[1:]]))
    case.write_label(second, case.label([*case.src[:4], *unknown]))
    rows, notes = read_split(case.fmt, tmp_path, case.split, tmp_path / "out")
    converted = [np.array(Image.open(tmp_path / "out" / row["label"])).tolist() for row in rows]
    assert converted[0] == stripes([255, *case.train[1:]]).tolist()
    assert converted[1] == stripes([*case.train[:4], 255, 255]).tolist()
    assert converted[2] == stripes(case.train).tolist()
    assert notes == [f"{case.fmt} {case.split}: {3 * W} pixels in 2 files had ids outside the official table and "
                     f"were set to ignore (e.g. {first.resolve()})"]  # fmt: skip


@pytest.mark.parametrize("case", [GTA5, SYNTHIA], ids=["gta5", "synthia"])
def test_label_of_nothing_but_unknown_ids(case: Case, tmp_path: Path) -> None:
    case.build(tmp_path)
    label = tmp_path / case.paths(case.ids[2])[1]
    case.write_label(label, case.label([200] * H))
    with raises(label.name, f"all {W * H} pixels hold values", ": 200", "check that the label folder is the right one"):
        case.read(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(("case", "fragments"), [
    (CITYSCAPES, ["RGB image, not one channel of class ids", "not the colour pictures"]),
    (GTA5, ["RGB image, not one channel of class ids", "not the colour pictures"]),
    (SYNTHIA, ["8-bit colour picture, not SYNTHIA's 16-bit class ids", "GT/LABELS, not", "GT/COLOR"]),
], ids=["cityscapes", "gta5", "synthia"])  # fmt: skip
def test_colour_label_is_refused(case: Case, fragments: list[str], tmp_path: Path) -> None:
    case.build(tmp_path)
    label = tmp_path / case.paths(case.ids[0])[1]
    write_image(label, 0)
    with raises(label.name, *fragments):
        case.read(tmp_path, tmp_path / "out")


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


# ---- worker processes: the same bytes as one process, errors crossing back, the note printed by the stage


def run_data(root: Path, case: Case, workers: int) -> tuple[str, dict[str, bytes]]:
    """`dgsynth data d --workers N` on the tree at `root`, in the current folder: its stdout and every file written."""
    spec = {"format": case.fmt, "root": str(root), "splits": {case.split: None}, "options": case.options}
    Path("params.yaml").write_text(yaml.safe_dump({"data": {"domains": {"d": spec}}}))
    result = CliRunner().invoke(app, ["data", "d", "--workers", str(workers)])
    assert result.exit_code == 0, result.output
    out = Path("data/domains/d")
    return result.stdout, {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def pools(monkeypatch) -> list[int]:
    """The sizes of the process pools that `pipeline.parallel` starts."""
    sizes = []

    class Spy(ProcessPoolExecutor):
        def __init__(self, workers: int):
            sizes.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Spy)
    return sizes


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_two_workers_write_the_same_bytes(case: Case, tmp_path: Path, monkeypatch, pools: list[int]) -> None:
    root = tmp_path / "data"
    case = dataclasses.replace(case, ids=sorted(f"{case.ids[0]}{i:02d}" for i in range(9)))
    case.build(root)
    if case.fmt in IGNORING:  # one label with an unknown id, for the note
        case.write_label(root / case.paths(case.ids[4])[1], case.label([IGNORING[case.fmt], *case.src[1:]]))
    monkeypatch.chdir(tmp_path)
    one_out, one = run_data(root, case, workers=1)
    assert pools == []
    two_out, two = run_data(root, case, workers=2)
    assert pools == [2]
    assert one_out == two_out and one_out.endswith(f"d: {case.split} 9 images\n")
    assert ("were set to ignore" in one_out) == (case.fmt in IGNORING)
    written = sorted([f"{case.split}.parquet", *(f"labels/{case.split}/{k}.png" for k in case.ids)])
    assert list(one) == list(two) == written
    assert all(one[name] == two[name] for name in one)


def test_dwd_with_two_workers(tmp_path: Path, pools: list[int]) -> None:
    root = build_dwd(tmp_path)
    assert read_split("dwd", root, "test", tmp_path / "one") == read_split("dwd", root, "test", tmp_path / "two",
                                                                           workers=2)  # fmt: skip
    assert pools == [2]


def test_error_in_a_worker(tmp_path: Path, pools: list[int]) -> None:
    """An InputError raised in a worker process reaches the caller whole, and no domain folder is left behind."""
    CITYSCAPES.build(tmp_path / "data")
    image = tmp_path / "data" / CITYSCAPES.paths(CITYSCAPES.ids[1])[0]
    cut_in_half(image, 1)
    spec = {"format": "cityscapes", "root": str(tmp_path / "data"), "splits": {"val": None}}
    errors = []
    for workers in (1, 2):
        with pytest.raises(InputError) as info:
            build_domain("cs", spec, None, tmp_path / "cs", workers)
        errors.append((type(info.value), info.value.where, info.value.problem, info.value.fix))
    assert errors[0] == errors[1] and errors[0][1] == str(image.resolve()) and pools == [2]
    assert not (tmp_path / "cs").exists()
