"""The `synthesize` stage on tiny random Stable Diffusion models (the real architecture and folder layout, random
weights) over a tiny world: outputs of every mode, determinism, resume after an interruption or a kill, model
lookup, validation errors, several ranks."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from diffusers import DiffusionPipeline, StableDiffusionDepth2ImgPipeline
from diffusers.models.attention_processor import AttnProcessor2_0
from huggingface_hub import constants
from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor
from typer.testing import CliRunner

from pipeline import packed
from pipeline.domains import build_domain
from pipeline.manifest import read_manifest
from pipeline.prompts import build_prompts, read_prompts, write_prompts
from pipeline.sd import Sizes, build_components, save_depth_pipeline, save_pipeline, write_vocabulary
from pipeline.synthesis import check, find_weights, generate, load_pipeline, shards
from pipeline.synthesis import generation
from pipeline.synthesis.depth import condition, estimate_depth, inverse_depth
from pipeline.synthesis.model import looks_local
from pipeline.synthesis.ranks import Ranks
from pipeline.sheets import slug
from pipeline.synthesis.run import read_sources
from stages.cli import app
from test_seg_dist import on_nodes

H, W = 32, 64  # the world images
TINY = Sizes(unet=(8, 16), vae=(8, 16), text_width=32, text_layers=1, groups=4)
PROMPTS = {"seed": 0, "split": "train", "images": 12, "quality": "A high quality photo;", "locations": ["europe", "India"],
           "scenes": ["", "City"], "conditions": ["rain", "fog/mist", "night/darkness"], "classes": True,
           "balance": True, "rare_exclude": [], "negative": "blurry"}  # fmt: skip
SYNTHESIZE = {"model": None, "revision": None, "mode": "img2img", "height": 16, "width": 32, "steps": 10,
              "guidance": 7.5, "strength": 0.6, "scheduler": "dpm++", "batch": 3, "dtype": "auto", "compile": False,
              "shard_size": 5, "sheet": {"images": 2, "tile_height": 48}}  # fmt: skip
OUT = Path("data/synthetic")
WIP = Path(".dgsynth/wip")
DGSYNTH = str(Path(sys.executable).parent / "dgsynth")


def dgsynth(*args: str):
    return CliRunner().invoke(app, list(args))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, and every member of an archive as `<archive>/<member>`, with the
    sha256 of its bytes."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.suffix == packed.SUFFIX:
            with tarfile.open(path) as tar:
                files |= {f"{path.relative_to(folder)}/{name}": hashlib.sha256(packed.read_bytes(path / name)).hexdigest()
                          for name in tar.getnames()}  # fmt: skip
    return files


def packed_images(folder: Path) -> dict[str, str]:
    """The sha256 of every generated image (not label) in the archives under `folder`, by file name."""
    return {Path(name).name: digest for name, digest in snapshot(folder).items()
            if name.endswith(".png") and not name.endswith("_label.png")}  # fmt: skip


def wip_images() -> list[Path]:
    return sorted(WIP.glob("synthesize-*/synthetic/shard-*/[0-9]*[0-9].png"))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random models: plain (4-channel UNet) and depth (5 channels: latents + depth)."""
    root = tmp_path_factory.mktemp("models")
    return {"plain": save_pipeline(build_components(TINY), root / "plain"),
            "depth": save_depth_pipeline(build_components(Sizes(**{**TINY.__dict__, "unet_in_channels": 5})),
                                         root / "depth")}  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A project with a 4-image world source domain `s` and a 12-row prompt table over it."""
    root = tmp_path_factory.mktemp("template")
    spec = {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 4}}
    build_domain("s", spec, {"seed": 0, "height": H, "width": W}, root / "data/domains/s")
    write_prompts(build_prompts(PROMPTS, read_manifest(root / "data/domains/s/train.parquet")), root / "data/prompts.parquet")
    return root


def configure(**changes) -> None:
    """Change the synthesize section of params.yaml in the working directory (SYNTHESIZE where there is none)."""
    path = Path("params.yaml")
    cfg = {**(yaml.safe_load(path.read_text())["synthesize"] if path.is_file() else SYNTHESIZE), **changes}
    path.write_text(yaml.safe_dump({"data": {"source": "s"}, "synthesize": cfg}, sort_keys=False))


@pytest.fixture
def project(tmp_path, monkeypatch, template, models) -> Path:
    """A copy of the template as the working directory, with params.yaml for img2img with the plain model."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    configure(model=str(models["plain"]))
    return tmp_path


def synthesize_ok() -> str:
    result = dgsynth("synthesize")
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


# --- outputs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "depth2img"])
def test_outputs_of_each_mode(project, models, mode):
    model = str(models["depth" if mode == "depth2img" else "plain"])
    configure(mode=mode, model=model)
    summary = synthesize_ok()
    assert summary.startswith(f"wrote data/synthetic: 12 {mode} images in 3 shards (made 12 (")
    assert summary.endswith("kept 0); reports/synthesize/sheets: 3 contact sheets")

    prompts = read_prompts("data/prompts.parquet")
    source = read_manifest("data/domains/s/train.parquet").set_index("id")
    labeled = mode != "txt2img"
    names = {f"shard-0000{k}{suffix}" for k in range(3) for suffix in (".parquet", ".tar")} | {"train.parquet"}
    for k, ids in enumerate((prompts["id"][:5], prompts["id"][5:10], prompts["id"][10:])):
        names |= {f"shard-0000{k}.tar/{i}.png" for i in ids}
        names |= {f"shard-0000{k}.tar/{i}_label.png" for i in ids} if labeled else set()
    files = snapshot(OUT)
    assert set(files) == names
    assert not WIP.exists() or list(WIP.iterdir()) == []  # the WIP folder was renamed into place and removed

    frame = read_manifest(OUT / "train.parquet")
    parts = pd.concat([pd.read_parquet(OUT / f"shard-0000{k}.parquet") for k in range(3)], ignore_index=True)
    assert pd.read_parquet(OUT / "train.parquet").equals(parts)
    assert frame["id"].tolist() == prompts["id"].tolist()
    for made, prompt in zip(frame.to_dict("records"), prompts.to_dict("records")):
        src = source.loc[prompt["source_id"]]
        image = packed.imread(made["image"], cv2.IMREAD_UNCHANGED)
        assert image.shape == ((H, W, 3) if labeled else (16, 32, 3))  # the source's size, or the model's
        assert (made["height"], made["width"]) == image.shape[:2]
        assert made["sha256"] == hashlib.sha256(packed.read_bytes(made["image"])).hexdigest()
        assert made["image"].endswith(f"/{prompt['id']}.png")
        for key in ("prompt", "negative_prompt", "location", "scene", "rare_class", "source_id", "seed", "condition"):
            assert made[key] == prompt[key], key
        assert list(made["classes"]) == list(prompt["classes"])
        assert (made["dataset"], made["domain"], made["split"], made["city"]) == ("synthetic", "synthetic", "train", "a")
        assert (made["mode"], made["model"], made["scheduler"]) == (mode, model, "DPMSolverMultistepScheduler")
        assert (made["steps"], made["guidance"]) == (10, 7.5)
        assert pd.isna(made["revision"]) and made["depth"] is None
        if labeled:
            assert made["strength"] == 0.6
            assert packed.read_bytes(made["label"]) == Path(src["label"]).read_bytes()
            assert list(made["boxes"]) == list(src["boxes"])
        else:
            assert pd.isna(made["strength"]) and made["label"] is None and made["boxes"] is None
    assert len(set(packed_images(OUT).values())) == 12  # all different

    sheets = sorted(p.name for p in Path("reports/synthesize/sheets").iterdir())
    assert sheets == ["fog-mist.png", "night-darkness.png", "rain.png"]
    sheet = cv2.imread("reports/synthesize/sheets/rain.png")
    rows = 3 if labeled else 1  # generated; source; label overlay
    assert sheet.shape[0] == rows * (48 + 2)


def test_model_settings_reach_the_pipeline(models):
    settings = check({**SYNTHESIZE, "model": str(models["plain"])})
    pipe = load_pipeline(find_weights(settings.model), settings, torch.device("cpu"))
    assert {type(p) for p in pipe.unet.attn_processors.values()} == {AttnProcessor2_0}  # torch SDPA
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert (pipe.scheduler.config.algorithm_type, pipe.scheduler.config.solver_order) == ("dpmsolver++", 2)
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"  # from the model's own scheduler config
    assert pipe.safety_checker is None and pipe._progress_bar_config == {"disable": True}
    assert pipe.unet.dtype == torch.float32


@pytest.mark.parametrize(("name", "expected"), [("ddim", "DDIMScheduler"), ("euler", "EulerDiscreteScheduler"),
                                                ("pndm", "PNDMScheduler"), ("model", "DDPMScheduler")])  # fmt: skip
def test_schedulers(project, name, expected):
    configure(scheduler=name)
    assert "12 img2img images" in synthesize_ok()
    assert set(pd.read_parquet(OUT / "train.parquet")["scheduler"]) == {expected}


# --- determinism and depth -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(template) -> tuple[list[dict], list[dict]]:
    """The template's prompt rows and their source rows."""
    prompts = read_prompts(template / "data/prompts.parquet")
    sources, _ = read_sources(prompts, template / "data/prompts.parquet", template / "data/domains")
    return prompts.to_dict("records"), sources


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "depth2img"])
def test_an_image_is_the_same_alone_or_in_a_batch(models, inputs, mode):
    settings = check({**SYNTHESIZE, "mode": mode, "model": str(models["depth" if mode == "depth2img" else "plain"])})
    pipe = load_pipeline(find_weights(settings.model), settings, torch.device("cpu"))
    rows, sources = inputs[0][:6], inputs[1][:6]
    batch = generate(pipe, settings, rows, sources)
    assert np.array_equal(generate(pipe, settings, rows, sources)[3], batch[3])  # the same batch twice: same bytes
    alone = [generate(pipe, settings, rows[i : i + 1], sources[i : i + 1])[0] for i in range(6)]
    # On the CPU in fp32, batched convolutions round a little differently from single ones (oneDNN picks kernels by
    # shape): about 1e-6 in the floats, which moves a rounded uint8 by one level in a rare pixel, if at all.
    differences = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(alone, batch)]
    assert max(d.max() for d in differences) <= 1
    assert max((d > 0).mean() for d in differences) < 0.005
    assert sum(d.max() == 0 for d in differences) >= 5  # most images are identical bytes
    assert not np.array_equal(batch[0], batch[1])


def test_inverse_depth(tmp_path):
    cv2.imwrite(str(tmp_path / "depth.png"), np.array([[0, 100, 200, 400]], np.uint16))  # centimetres
    assert inverse_depth(str(tmp_path / "depth.png"), 1, 4).tolist() == [[0.0, 1.0, 0.5, 0.25]]  # 0: unknown, far


def test_depth_condition_is_what_the_pipeline_feeds_the_unet(models):
    """The generator trains its depth UNet on `condition`'s maps: they must equal the depth2img pipeline's own."""
    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(models["depth"], local_files_only=True,
                                                            depth_estimator=None, feature_extractor=None)  # fmt: skip
    depth = torch.rand(2, 32, 64, generator=torch.Generator().manual_seed(0)) * 3
    ours = condition(depth, pipe.vae_scale_factor)
    theirs = pipe.prepare_depth_map(torch.zeros(2, 3, 32, 64), depth, 2, False, torch.float32, torch.device("cpu"))
    assert ours.shape == (2, 1, 32 // pipe.vae_scale_factor, 64 // pipe.vae_scale_factor)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_depth2img_uses_the_manifest_depth(models, inputs, tmp_path):
    settings = check({**SYNTHESIZE, "mode": "depth2img", "model": str(models["depth"])})
    pipe = load_pipeline(find_weights(settings.model), settings, torch.device("cpu"))
    rows, sources = inputs[0][:1], inputs[1][:1]
    flipped = tmp_path / "flipped.png"
    cv2.imwrite(str(flipped), cv2.imread(sources[0]["depth"], cv2.IMREAD_UNCHANGED)[::-1])
    same = generate(pipe, settings, rows, sources)[0]
    other = generate(pipe, settings, rows, [{**sources[0], "depth": str(flipped)}])[0]
    assert np.abs(same.astype(int) - other.astype(int)).mean() > 1


@pytest.fixture(scope="module")
def dpt_model(tmp_path_factory) -> Path:
    """A tiny depth model with its own (random) DPT depth estimator, as stable-diffusion-2-depth has."""
    torch.manual_seed(0)
    config = DPTConfig(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=32,
                       patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                       fusion_hidden_size=8, head_hidden_size=8)  # fmt: skip
    pipe = StableDiffusionDepth2ImgPipeline(
        **build_components(Sizes(**{**TINY.__dict__, "unet_in_channels": 5})),
        depth_estimator=DPTForDepthEstimation(config).eval(),
        feature_extractor=DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False),
    )
    folder = tmp_path_factory.mktemp("dpt") / "model"
    pipe.save_pretrained(folder)
    return folder


def _drop_depth(row_index: int) -> None:
    path = Path("data/domains/s/train.parquet")
    frame = pd.read_parquet(path)
    frame.loc[row_index, "depth"] = None
    frame.to_parquet(path)


def test_depth2img_estimates_depth_where_a_source_has_none(project, dpt_model, monkeypatch):
    _drop_depth(1)
    configure(mode="depth2img", model=str(dpt_model))
    estimated = []
    monkeypatch.setattr(generation, "estimate_depth", lambda pipe, image: estimated.append(image) or
                        estimate_depth(pipe, image))  # fmt: skip
    assert "12 depth2img images" in synthesize_ok()
    uses = (read_prompts("data/prompts.parquet")["source_id"] == "s-train-00001").sum()
    assert len(estimated) == uses > 0 and {image.size for image in estimated} == {(32, 16)}


def test_depth2img_without_depth_or_estimator_names_the_row(project, models):
    _drop_depth(1)
    configure(mode="depth2img", model=str(models["depth"]))
    result = dgsynth("synthesize")
    assert result.exit_code == 2, result.output
    row = read_prompts("data/prompts.parquet").query("source_id == 's-train-00001'")["id"].iloc[0]
    assert f"data/prompts.parquet row {row}: source s-train-00001 has no depth" in result.stderr
    assert "stabilityai/stable-diffusion-2-depth" in result.stderr
    assert "synthesize.mode: img2img; with the embedded generator, synthesize.model: models/generator" in result.stderr
    assert not OUT.exists()


# --- resume --------------------------------------------------------------------------------------------------------


class Killed(Exception):
    pass


def test_resume_after_an_interruption(project, monkeypatch, tmp_path_factory, template):
    """Stop in the middle of the 3rd batch (after its first image), resume, and get the uninterrupted run's bytes."""
    write_batch = shards.write_batch
    calls = []

    def interrupted(root, shard, batch, rows, sources, settings, images):
        calls.append(batch)
        if len(calls) == 3:
            write_batch(root, shard, batch[:1], rows, sources, settings, images[:1])
            raise Killed
        write_batch(root, shard, batch, rows, sources, settings, images)

    monkeypatch.setattr(shards, "write_batch", interrupted)
    assert isinstance(dgsynth("synthesize").exception, Killed)
    assert not OUT.exists()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in wip_images()}
    assert len(before) == 3 + 2 + 1  # shard 0: batches of 3 and 2; shard 1: one image of its first batch
    monkeypatch.setattr(shards, "write_batch", write_batch)

    summary = synthesize_ok()
    assert "(made 7 (" in summary and "kept 5)" in summary  # the partial batch is made again, whole
    after = packed_images(OUT)
    assert {name: after[name] for name in before} == before  # the images already made are the ones packed

    fresh = tmp_path_factory.mktemp("fresh")
    shutil.copytree(template, fresh, dirs_exist_ok=True)
    shutil.copy("params.yaml", fresh / "params.yaml")
    monkeypatch.chdir(fresh)
    synthesize_ok()
    assert snapshot(fresh / OUT) == snapshot(project / OUT)
    assert snapshot(fresh / "reports") == snapshot(project / "reports")


def test_other_fingerprints_are_removed_and_a_finished_run_leaves_no_wip(project):
    (WIP / "synthesize-0123456789abcdef/synthetic").mkdir(parents=True)
    (WIP / "unrelated").mkdir()
    synthesize_ok()
    assert sorted(p.name for p in WIP.iterdir()) == ["unrelated"]


def test_kill_and_resume(project, tmp_path_factory, template):
    """SIGKILL `dgsynth synthesize` once some images exist, rerun it, and compare with an uninterrupted run."""
    configure(steps=50, batch=2, shard_size=4)  # 30 denoising steps per batch: time to catch it midway
    process = subprocess.Popen([DGSYNTH, "synthesize"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(wip_images()) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    made = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in wip_images()}
    assert 3 <= len(made) < 12 and not OUT.exists(), "the run was not caught midway"

    summary = synthesize_ok()
    complete = len(made) // 2 * 2  # images are written in order, so at most one batch of 2 is partial
    assert f"(made {12 - complete} (" in summary and f"kept {complete})" in summary
    after = packed_images(OUT)
    assert {name: after[name] for name in made} == made

    fresh = tmp_path_factory.mktemp("uninterrupted")
    shutil.copytree(template, fresh, dirs_exist_ok=True)
    shutil.copy("params.yaml", fresh / "params.yaml")
    subprocess.run([DGSYNTH, "synthesize"], cwd=fresh, check=True, capture_output=True, timeout=600)
    assert snapshot(fresh / OUT) == snapshot(project / OUT)


# --- model lookup --------------------------------------------------------------------------------------------------


def test_looks_local():
    assert looks_local("models/generator") and looks_local("./sd") and looks_local("/abs/sd") and looks_local("a/b/c")
    assert not looks_local("stabilityai/stable-diffusion-2-depth")


def test_hub_id_from_the_hf_cache_records_its_commit(project, models, monkeypatch, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny--sd"
    shutil.copytree(models["plain"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    weights = find_weights("tiny/sd")
    assert (weights.folder, weights.revision) == (repo / "snapshots" / commit, commit)
    configure(model="tiny/sd")
    synthesize_ok()
    frame = pd.read_parquet(OUT / "train.parquet")
    assert set(frame["model"]) == {"tiny/sd"} and set(frame["revision"]) == {commit}


def _fails(*fragments: str) -> None:
    result = dgsynth("synthesize")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and " (fix: " in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert not OUT.exists() and not Path("reports/synthesize/sheets").exists()


def test_missing_local_model_says_to_run_the_generator(project):
    configure(model="models/generator")
    _fails("params.yaml synthesize.model: no model folder 'models/generator'", "dvc repro generator")


def test_unknown_hub_id_offline_names_the_cache(project, monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    configure(model="nobody/no-such-model")
    _fails(f"'nobody/no-such-model' (revision main) is not in the Hugging Face cache {tmp_path / 'hub'}",
           "HF_HUB_OFFLINE is set", "hf download nobody/no-such-model", "a local diffusers folder")  # fmt: skip


def test_hub_id_not_cached_is_downloaded_and_a_failed_download_says_why(project, monkeypatch, tmp_path):
    calls = []

    def download(cls, model, revision, cache_dir, local_files_only=False):
        calls.append((model, revision, cache_dir, local_files_only))
        try:
            raise ConnectionError("[Errno -2] Name or service not known")
        except ConnectionError as error:
            raise OSError("Cannot load model: not fully cached locally\n(see the stacktrace)") from error

    monkeypatch.setattr(DiffusionPipeline, "download", classmethod(download))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    configure(model="owner/model", revision="v2")
    _fails("'owner/model' (revision v2) is not in the Hugging Face cache", "could not be downloaded ([Errno -2] Name "
           "or service not known)", "hf download owner/model")  # fmt: skip
    cache = str(tmp_path / "hub")
    assert calls == [("owner/model", "v2", cache, True), ("owner/model", "v2", cache, False)]  # the cache first


def test_depth2img_with_a_plain_unet(project):
    configure(mode="depth2img")
    _fails("UNet takes 4 input channels; depth2img needs a depth model", "stabilityai/stable-diffusion-2-depth")


# --- validation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"mode": "inpaint"}, ["synthesize.mode: unknown mode 'inpaint'", "txt2img, img2img, depth2img"]),
        ({"scheduler": "lms"}, ["synthesize.scheduler: unknown scheduler 'lms'", "dpm++, ddim, euler, pndm, model"]),
        ({"dtype": "fp8"}, ["synthesize.dtype: unknown dtype 'fp8'", "auto, fp32, fp16, bf16"]),
        ({"height": 30}, ["synthesize.height: 30 is not a multiple of 8", "use 24 or 32"]),
        ({"width": 0}, ["synthesize.width: 0 is not a whole number >= 1"]),
        ({"strength": 0}, ["synthesize.strength: 0 is not in (0, 1]"]),
        ({"strength": 1.5}, ["synthesize.strength: 1.5 is not in (0, 1]"]),
        ({"steps": 0}, ["synthesize.steps: 0 is not a whole number >= 1"]),
        ({"steps": 1, "strength": 0.5}, ["steps x strength = 1 x 0.5 leaves no denoising step"]),
        ({"batch": True}, ["synthesize.batch: True is not a whole number >= 1"]),
        ({"sheet": {"images": 2}}, ["synthesize.sheet", "{images: 6, tile_height: 96}"]),
        ({"compile": "yes"}, ["synthesize.compile: 'yes' is not true or false"]),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)  # fmt: skip
def test_bad_settings(project, change, fragments):
    configure(**change)
    _fails(*fragments)


def test_txt2img_ignores_strength(project):
    configure(mode="txt2img", strength=7)
    synthesize_ok()
    assert pd.read_parquet(OUT / "train.parquet")["strength"].isna().all()


def test_prompt_row_without_its_source(project):
    prompts = read_prompts("data/prompts.parquet")
    prompts.loc[4, "source_id"] = "s-train-00099"
    write_prompts(prompts, "data/prompts.parquet")
    _fails("data/prompts.parquet row 000004: source_id 's-train-00099' is not in data/domains/s/train.parquet",
           "dvc repro prompts")  # fmt: skip


def test_prompt_conditions_the_generator_never_saw_are_reported(project, models, tmp_path):
    """The template's prompts use rain, fog/mist and night/darkness; a generator whose captions had only the first
    two is reported for night/darkness with its row count, one without a vocabulary (real SD) for nothing."""
    generator = tmp_path / "generator"
    shutil.copytree(models["plain"], generator)
    write_vocabulary(generator, ["rain", "fog/mist", "sunny"])
    configure(model=str(generator))
    nights = int((read_prompts("data/prompts.parquet")["condition"] == "night/darkness").sum())
    result = dgsynth("synthesize")
    assert result.exit_code == 0 and nights > 0
    assert f"warning: the generator at {generator} never saw the prompt conditions 'night/darkness' ({nights} rows)" \
        in result.stderr and "'rain'" not in result.stderr  # fmt: skip
    configure(model=str(models["plain"]))
    assert "never saw" not in dgsynth("synthesize").stderr


def test_condition_slugs():
    assert [slug(c) for c in ("fog/mist", "artificial lighting", "night/darkness", "rain", "")] == [
        "fog-mist", "artificial-lighting", "night-darkness", "rain", "no-condition"]  # fmt: skip


# --- several ranks -------------------------------------------------------------------------------------------------


def test_rank_assignment(monkeypatch):
    ranks = [Ranks(rank, 3, rank) for rank in range(3)]
    assert [[k for k in range(8) if r.owns(k)] for r in ranks] == [[0, 3, 6], [1, 4, 7], [2, 5]]
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Ranks.from_env() == Ranks(3, 4, 1)
    assert Ranks.from_env().device == (torch.device("cuda", 1) if torch.cuda.is_available() else torch.device("cpu"))
    monkeypatch.delenv("WORLD_SIZE")
    assert Ranks.from_env() == Ranks(0, 1, 0)


@pytest.mark.parametrize("nodes", [1, 2], ids=["2-ranks", "2-machines-of-2-ranks"])
def test_torchrun_ranks_match_one_process(project, tmp_path_factory, template, nodes):
    """2 ranks, or 2 "machines" of 2 ranks sharing the project folder: rank r makes the shards k % world == r."""
    done = on_nodes([DGSYNTH, "synthesize"], project, nodes, 2)
    assert done.returncode == 0, done.stderr
    assert "rank 1: shards [1]" in done.stdout and "wrote data/synthetic: 12 img2img images in 3 shards" in done.stdout
    if nodes == 2:
        assert "rank 2: shards [2]" in done.stdout and "rank 3: shards []" in done.stdout
    single = tmp_path_factory.mktemp("single")
    shutil.copytree(template, single, dirs_exist_ok=True)
    shutil.copy("params.yaml", single / "params.yaml")
    subprocess.run([DGSYNTH, "synthesize"], cwd=single, check=True, capture_output=True, timeout=600)
    assert snapshot(single / OUT) == snapshot(project / OUT)
