"""The output layout: shards of `shard_size` prompt rows, each an archive of PNGs and a manifest, then train.parquet.

    data/synthetic/
      shard-00000.tar       <id>.png and <id>_label.png: the label (img2img, depth2img) is the source's, byte for
                            byte; so are the boxes (in the manifest), with or without a label
      shard-00000.parquet   the shard's manifest; its paths go through the archive: shard-00000.tar/<id>.png
      train.parquet         every shard's rows, read like any domain manifest

Paths in the manifests are relative to data/synthetic. While a shard is made its files are loose, in the work
folder's shard-00000/; once they are all there the folder is packed into the archive (`pipeline.packed`, so that
DVC hashes one file per shard), the manifest is written, and the folder removed. Shard k holds prompt rows
k*shard_size onwards, and its batches are fixed slices of it, so a batch has the same images in every run (and a
resumed run remakes a partial batch exactly as it was).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import packed
from pipeline.atomic import atomic_path
from pipeline.manifest import file_sha256, write_manifest
from pipeline.synthesis.images import write_rgb_png
from pipeline.synthesis.settings import Settings

EXTRA = pa.schema(
    [
        ("prompt", pa.string()),
        ("negative_prompt", pa.string()),
        ("location", pa.string()),
        ("scene", pa.string()),
        ("classes", pa.list_(pa.string())),
        ("rare_class", pa.string()),
        ("source_id", pa.string()),
        ("seed", pa.int64()),
        ("mode", pa.string()),
        ("model", pa.string()),
        ("revision", pa.string()),  # the commit of a hub model; null for a local folder
        ("scheduler", pa.string()),  # the scheduler's class name
        ("steps", pa.int32()),
        ("guidance", pa.float64()),
        ("strength", pa.float64()),  # null for txt2img
    ]
)
PROMPT_COLUMNS = ("prompt", "negative_prompt", "location", "scene", "rare_class", "source_id", "seed")


@dataclass(frozen=True)
class Shard:
    index: int
    rows: range  # positions in the prompt table

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"

    @property
    def manifest(self) -> str:
        return f"{self.name}.parquet"

    @property
    def archive(self) -> str:
        return f"{self.name}{packed.SUFFIX}"

    def batches(self, size: int) -> list[range]:
        return [self.rows[i : i + size] for i in range(0, len(self.rows), size)]


def plan(rows: int, shard_size: int) -> list[Shard]:
    return [Shard(k, range(start, min(start + shard_size, rows))) for k, start in enumerate(range(0, rows, shard_size))]


def image_name(shard: Shard, row_id: str) -> str:
    """The image's loose file under the work folder (the manifest's path is `<archive>/<id>.png`)."""
    return f"{shard.name}/{row_id}.png"


def label_name(shard: Shard, row_id: str) -> str:
    return f"{shard.name}/{row_id}_label.png"


def packed_name(shard: Shard, loose: str) -> str:
    """The manifest's path of a loose file of the shard: through its archive."""
    return f"{shard.archive}/{Path(loose).name}"


def copies_label(settings: Settings, source: dict) -> bool:
    """Whether an image gets its source's label: in img2img and depth2img, when the source has one."""
    return settings.labeled and source["label"] is not None


def missing(root: Path, shard: Shard, batch: range, rows: list[dict], sources: list[dict], settings: Settings) -> bool:
    """Whether any file of the batch is missing under `root` (each file is written atomically: present is whole)."""
    return any(not (root / image_name(shard, rows[i]["id"])).is_file()
               or copies_label(settings, sources[i]) and not (root / label_name(shard, rows[i]["id"])).is_file()
               for i in batch)  # fmt: skip


def write_batch(root: Path, shard: Shard, batch: range, rows: list[dict], sources: list[dict], settings: Settings,
                images: list[np.ndarray]) -> None:  # fmt: skip
    """Write the batch's missing files: each image, and its source's label copied byte for byte."""
    for i, image in zip(batch, images):
        label = root / label_name(shard, rows[i]["id"])
        if copies_label(settings, sources[i]) and not label.is_file():
            with atomic_path(label) as tmp:
                shutil.copyfile(sources[i]["label"], tmp)
        if not (root / image_name(shard, rows[i]["id"])).is_file():
            write_rgb_png(image, root / image_name(shard, rows[i]["id"]))


def manifest_row(root: Path, shard: Shard, row: dict, source: dict, settings: Settings, record: dict) -> dict:
    """The manifest row of one generated image under `root`; `record` holds model, revision and scheduler. img2img
    and depth2img keep the source's boxes, also where the source has no pixel label (e.g. Diverse-Weather)."""
    labeled = copies_label(settings, source)
    return {
        "id": row["id"], "image": packed_name(shard, image_name(shard, row["id"])),
        "label": packed_name(shard, label_name(shard, row["id"])) if labeled else None,
        "depth": None, "boxes": list(source["boxes"]) if settings.labeled and source["boxes"] is not None else None,
        "dataset": "synthetic", "domain": "synthetic", "city": source["city"], "condition": row["condition"],
        "split": "train", "width": source["width"] if settings.labeled else settings.width,
        "height": source["height"] if settings.labeled else settings.height,
        "sha256": file_sha256(root / image_name(shard, row["id"])),
        **{key: row[key] for key in PROMPT_COLUMNS}, "classes": list(row["classes"]),
        "mode": settings.mode, **record, "steps": settings.steps, "guidance": settings.guidance,
        "strength": settings.strength,
    }  # fmt: skip


def finish(root: Path, shard: Shard, rows: list[dict], sources: list[dict], settings: Settings, record: dict) -> None:
    """Pack a shard whose files all exist loose under `root`, write its manifest, remove the loose files. A shard
    with a manifest is finished: a kill after the manifest leaves only the loose folder to remove."""
    if not (root / shard.manifest).is_file():
        entries = [manifest_row(root, shard, rows[i], sources[i], settings, record) for i in shard.rows]
        packed.pack(root / shard.name, root / shard.archive)
        write_manifest(entries, root / shard.manifest, extra=EXTRA)
    shutil.rmtree(root / shard.name, ignore_errors=True)


def combine(root: Path, shards: list[Shard]) -> int:
    """Write `train.parquet`, every shard manifest's rows in order; return the number of rows."""
    table = pa.concat_tables([pq.read_table(root / shard.manifest) for shard in shards])
    with atomic_path(root / "train.parquet") as tmp:
        pq.write_table(table, tmp)
    return table.num_rows
