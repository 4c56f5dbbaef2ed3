"""The synthesize stage from start to end: check the inputs, make the missing batches, assemble the outputs.

Every check runs before any image is made. Images go to the work-in-progress folder (see `wip.py`) one batch at a
time; a batch whose files all exist is skipped, so a killed run resumes where it stopped. A shard is packed into
its archive and its manifest written once all its files exist (`shards.py`); when every shard has one, rank 0
combines them into train.parquet, draws the contact sheets and renames the finished folders into place.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline.atomic import replace_dir
from pipeline.errors import InputError
from pipeline.manifest import read_manifest
from pipeline.prompts import read_prompts
from pipeline.sd import read_vocabulary
from pipeline.synthesis import shards, wip
from pipeline.synthesis.generation import generate
from pipeline.synthesis.model import DEPTH_MODEL, Weights, check_unet, find_weights, load_pipeline, scheduler_name
from pipeline.synthesis.ranks import Ranks
from pipeline.synthesis.report import write_sheets
from pipeline.synthesis.settings import Settings


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows of `frame` as dicts, nulls as None (pandas reads a null in a string column as NaN)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def read_sources(prompts: pd.DataFrame, prompts_path: Path, domains: Path) -> tuple[list[dict], list[Path]]:
    """The source manifest row of every prompt row, in order, and the manifests read."""
    manifests = {}
    for domain, split in prompts[["source_domain", "source_split"]].drop_duplicates().itertuples(index=False):
        path = domains / domain / f"{split}.parquet"
        manifests[domain, split] = (path, {row["id"]: row for row in records(read_manifest(path))})
    sources = []
    for row in prompts.itertuples():
        path, by_id = manifests[row.source_domain, row.source_split]
        if row.source_id not in by_id:
            raise InputError(f"{prompts_path} row {row.id}", f"source_id {row.source_id!r} is not in {path}",
                             "the source domain changed since the prompts were made: run `dvc repro prompts`")  # fmt: skip
        sources.append(by_id[row.source_id])
    return sources, [path for path, _ in manifests.values()]


def check_depth(weights: Weights, prompts: pd.DataFrame, sources: list[dict], prompts_path: Path) -> None:
    """depth2img needs a depth for every source: from its manifest, or from the model's depth estimator."""
    if weights.has_depth_estimator:
        return
    for row, source in zip(prompts.itertuples(), sources):
        if source["depth"] is None:
            raise InputError(f"{prompts_path} row {row.id}", f"source {row.source_id} has no depth and "
                             f"{weights.model} has no depth estimator",
                             f"use a source domain with depth (the embedded world's), a depth model with a depth "
                             f"estimator such as {DEPTH_MODEL}, or image-to-image (synthesize.mode: img2img; with "
                             "the embedded generator, synthesize.model: models/generator)")  # fmt: skip


def synthesize(settings: Settings, prompts_path: Path, domains: Path, out: Path, reports: Path, wip_root: Path) -> str:
    """Make every image of the prompt table into `out` and the contact sheets into `reports`; return a summary."""
    ranks = Ranks.from_env()
    prompts = read_prompts(prompts_path)
    if prompts.empty:
        raise InputError(prompts_path, "no prompts", "set prompts.images >= 1 and run `dvc repro prompts`")
    sources, manifests = read_sources(prompts, prompts_path, domains)
    weights = find_weights(settings.model, settings.revision)
    check_unet(weights, settings.mode)
    unseen = unseen_conditions(weights, prompts)
    if unseen and ranks.rank == 0:
        print(f"warning: {unseen}", file=sys.stderr)
    if settings.mode == "depth2img":
        check_depth(weights, prompts, sources, prompts_path)

    folder = wip.work_dir(wip_root, wip.fingerprint([prompts_path, *manifests], settings, weights))
    if ranks.rank == 0:
        wip.remove_others(wip_root, keep=folder)
    root = folder / "synthetic"
    rows = records(prompts)
    plan = shards.plan(len(rows), settings.shard_size)
    mine = [shard for shard in plan if ranks.owns(shard.index)]
    ranks.start()
    made, seconds = make_images(settings, weights, ranks, mine, rows, sources, root)
    record = {"model": settings.model, "revision": weights.revision, "scheduler": scheduler_name(weights, settings)}
    for shard in mine:
        shards.finish(root, shard, rows, sources, settings, record)
    ranks.wait_for_all()
    kept = sum(len(shard.rows) for shard in mine) - made
    speed = f"made {made} ({made / seconds:.2f} img/s), kept {kept}" if made else f"kept all {kept}"
    if ranks.rank != 0:
        return f"rank {ranks.rank}: shards {[shard.index for shard in mine]}, {speed}"

    total = shards.combine(root, plan)
    frame = read_manifest(root / "train.parquet")
    entries = list(zip(records(frame), sources))
    sheets = write_sheets(entries, folder / "reports", settings.sheet["images"], settings.sheet["tile_height"])
    replace_dir(folder / "reports", reports)
    replace_dir(root, out)
    shutil.rmtree(folder)
    return (f"wrote {out}: {total} {settings.mode} images in {len(plan)} shards ({speed}); "
            f"{reports}: {len(sheets)} contact sheets" + (f"; {unseen}" if unseen else ""))  # fmt: skip


def unseen_conditions(weights: Weights, prompts: pd.DataFrame) -> str:
    """What an embedded generator never saw in a caption among the prompts' conditions ('' if nothing, or if the
    weights do not record their captions' words, as real Stable Diffusion's do not)."""
    known = read_vocabulary(weights.folder)
    counts = prompts.loc[~prompts["condition"].isin(known or ()), "condition"].value_counts(sort=False)
    if known is None or counts.empty:
        return ""
    words = ", ".join(f"{word!r} ({n} rows)" for word, n in counts.items())
    return (f"the generator at {weights.model} never saw the prompt conditions {words} in a caption, so its images "
            "for them look like conditions it knows (add them to generator.conditions or drop them from "
            "prompts.conditions)")


def make_images(settings: Settings, weights: Weights, ranks: Ranks, mine: list[shards.Shard], rows: list[dict],
                sources: list[dict], root: Path) -> tuple[int, float]:  # fmt: skip
    """Make the batches of the shards `mine` that have files missing; return the images made and the seconds taken
    (model loading excluded)."""
    todo = []
    for shard in mine:
        if (root / shard.manifest).is_file():
            continue
        for stale in (root / shard.name).glob(".*.tmp"):  # left by a kill in the middle of a write
            stale.unlink()
        todo += [(shard, batch) for batch in shard.batches(settings.batch)
                 if shards.missing(root, shard, batch, rows, sources, settings)]  # fmt: skip
    if not todo:
        return 0, 0.0
    ranks.set_threads()
    pipe = load_pipeline(weights, settings, ranks.device)
    label = f"synthesize {settings.mode}" + (f" rank {ranks.rank}/{ranks.world}" if ranks.world > 1 else "")
    started = time.perf_counter()
    with tqdm(total=sum(len(batch) for _, batch in todo), desc=label, unit="img") as progress:
        for shard, batch in todo:
            images = generate(pipe, settings, [rows[i] for i in batch], [sources[i] for i in batch])
            shards.write_batch(root, shard, batch, rows, sources, settings, images)
            progress.update(len(batch))
    return progress.n, time.perf_counter() - started
