"""The generator stage: the captioned corpus, VAE training, an end-to-end run on a tiny size that loads as a
Stable Diffusion pipeline, the skip path, and bad settings (exit code 2, nothing written)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from diffusers import PNDMScheduler, StableDiffusionDepth2ImgPipeline, StableDiffusionPipeline
from typer.testing import CliRunner

from pipeline.domains import build_domain
from pipeline.generator.corpus import build_corpus
from pipeline.generator.settings import Size, load_conditions, load_words
from pipeline.generator.train import LossLog, pixels, train_unet, train_vae
from pipeline.manifest import read_manifest
from pipeline.sd import build_components, read_vocabulary
from pipeline.synthesis import check, find_weights, generate, load_pipeline
from pipeline.world import render
from stages import generator as stage
from stages.cli import app

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())
WORDS = load_words(SHIPPED["prompts"])
TINY = {"images": 24, "height": 32, "width": 64, "batch": 8, "vae_steps": 20, "unet_steps": 50, "depth_steps": 100,
        "lr": 0.002,
        "unet": [16, 32], "unet_attention": [True, False], "vae": [16, 32, 32], "vae_attention": True,
        "text_width": 32, "text_layers": 1, "train_text": True}  # fmt: skip
PARAMS = {
    "prompts": {"quality": "A high quality photo;", "locations": ["europe", "USA"], "scenes": ["", "City"]},
    "generator": {
        "seed": 0,
        "conditions": {"sunny": {"condition": "clear"},
                       "fog/mist": {"condition": "fog", "params": {"visibility": [30, 60]}},
                       "stormy": {"condition": "rain", "params": {"darkness": [0.35, 0.5]}}},
        "sizes": TINY,
        "samples": 2,
    },
    "synthesize": {"model": "models/generator-depth"},
}  # fmt: skip
OUT, SAMPLES, LOSS = Path("models/generator"), Path("reports/generator/samples"), Path("reports/generator/loss.csv")
OUT_DEPTH = Path("models/generator-depth")


def write_params(params: dict) -> None:
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def corpus(size: int, seed: int = 0, height: int = 16, width: int = 32):
    return build_corpus(seed, size, height, width, load_conditions(SHIPPED["generator"]), WORDS)


def test_captions_name_their_condition_and_no_other():
    shipped = load_conditions(SHIPPED["generator"])
    words = [c.word for c in shipped]
    assert "night" not in SHIPPED["generator"]["conditions"]
    data = corpus(2 * len(words) + 3)
    assert data.conditions[: len(words)] == words  # cycled in order: balanced
    counts = pd.Series(data.conditions).value_counts()
    assert counts.max() - counts.min() <= 1
    every_condition = set(SHIPPED["prompts"]["conditions"])
    for text, word in zip(data.captions, data.conditions):
        assert text.startswith("A high quality photo; ") and text.endswith(f", {word}")
        parts = set(text.split("; ")[-1].split(", "))
        assert parts & every_condition == {word}, text
        assert "night" not in text
        assert {"road", "sky"} <= parts  # the classes present in the rendered label


def test_corpus_is_deterministic():
    first, again, other = corpus(6), corpus(6), corpus(6, seed=1)
    assert first.images.shape == (6, 16, 32, 3) and first.images.dtype == np.uint8
    assert np.array_equal(first.images, again.images) and first.captions == again.captions
    assert not np.array_equal(first.images, other.images)


def test_city_c_differs_from_a_and_b():
    for index in range(3):
        c = render(0, "c", "clear", "val", index, 64, 128)
        for city in ("a", "b"):
            shot = render(0, city, "clear", "val", index, 64, 128)
            assert np.abs(shot.image.astype(int) - c.image).mean() > 10, (city, index)
            assert (shot.label != c.label).mean() > 0.1, (city, index)


def test_vae_training_lowers_the_reconstruction_loss():
    images = corpus(8, height=32, width=64).images
    vae = build_components(Size(**{**TINY, "unet": (16, 32), "vae": (16, 32, 32)}).architecture(), seed=0)["vae"]
    x = pixels(images)

    def error() -> float:
        """Mean absolute error of the decoded posterior means, in the [-1, 1] pixel range."""
        with torch.no_grad():
            return float((vae.decode(vae.encode(x).latent_dist.mean).sample - x).abs().mean())

    before = error()
    log = LossLog()
    train_vae(vae, images, steps=60, batch=4, lr=2e-3, generator=torch.Generator().manual_seed(0), log=log)
    after = error()
    assert before > 0.3, before  # an untrained decoder is far off
    assert after < 0.6 * before, (before, after)
    assert [step for step, _, _ in log.rows] == [10, 20, 30, 40, 50, 60]
    assert log.rows[-1][2] < 0.5 * log.rows[0][2]  # the logged training loss (MSE + KL) falls too


@pytest.mark.parametrize("train_text", [True, False])
def test_text_encoder_trains_only_when_asked(train_text):
    """generator.sizes.train_text: the UNet phase updates the text encoder with the UNet, or leaves it as built (as
    Stable Diffusion keeps CLIP's); the UNet learns either way."""
    items = corpus(8)
    components = build_components(Size(**TINY).architecture(), seed=0)
    before = {name: copy.deepcopy(components[name].state_dict()) for name in ("unet", "text_encoder")}
    latents = torch.randn(8, 4, 4, 8), torch.full((8, 4, 4, 8), 0.1)
    train_unet(components, latents, items.captions, steps=3, batch=4, lr=1e-3,
               generator=torch.Generator().manual_seed(0), log=LossLog(), train_text=train_text)  # fmt: skip

    def moved(name: str) -> bool:
        after = components[name].state_dict()
        return any(not torch.equal(after[key], value) for key, value in before[name].items())

    assert moved("unet")
    assert moved("text_encoder") is train_text


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """The tiny size run once through the stage, in its own project folder."""
    project = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        write_params(PARAMS)
        summary = stage.run()
    return project, summary


def test_stage_writes_a_stable_diffusion_folder(trained):
    project, summary = trained
    assert summary.startswith("wrote models/generator and models/generator-depth: 24 images of city c at 32x64, "
                              "vae 20 steps")  # fmt: skip
    pipe = StableDiffusionPipeline.from_pretrained(project / OUT, local_files_only=True)
    assert isinstance(pipe.scheduler, PNDMScheduler) and pipe.scheduler.config.skip_prk_steps
    assert pipe.scheduler.config.beta_schedule == "scaled_linear" and pipe.scheduler.config.beta_end == 0.012
    assert pipe.vae.config.scaling_factor != 1.0  # set from the latents' std
    assert read_vocabulary(project / OUT) == {"sunny", "fog/mist", "stormy"}  # its captions' condition words
    pipe.set_progress_bar_config(disable=True)
    images = pipe(["fog/mist", "sunny"], height=32, width=64, num_inference_steps=2, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert images.shape == (2, 32, 64, 3) and np.isfinite(images).all()


def test_depth_model_takes_latents_and_depth_as_sd2_depth(trained):
    project, _ = trained
    index = json.loads((project / OUT_DEPTH / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionDepth2ImgPipeline"
    assert index.get("depth_estimator", [None])[0] is None  # depth comes from the manifests
    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(project / OUT_DEPTH, local_files_only=True,
                                                            depth_estimator=None, feature_extractor=None)  # fmt: skip
    assert pipe.unet.config.in_channels == 5 and pipe.unet.config.out_channels == 4  # latents + depth -> noise
    for part in ("vae", "text_encoder"):  # shared with the text-to-image model: trained once
        assert _weights(project / OUT / part) == _weights(project / OUT_DEPTH / part)
    assert read_vocabulary(project / OUT_DEPTH) == {"sunny", "fog/mist", "stormy"}


def _weights(folder: Path) -> bytes:
    return next(folder.glob("*.safetensors")).read_bytes()


@pytest.fixture(scope="module")
def depth_inputs(trained) -> tuple:
    """The trained depth model through the synthesize stage's loader, and one world source row with its depth."""
    project, _ = trained
    build_domain("s", {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 1}},
                 {"seed": 0, "height": 64, "width": 128}, project / "data/domains/s")  # fmt: skip
    source = read_manifest(project / "data/domains/s/train.parquet").to_dict("records")[0]
    settings = check({"model": str(project / OUT_DEPTH), "revision": None, "mode": "depth2img", "height": 32,
                      "width": 64, "steps": 10, "guidance": 7.5, "strength": 1.0, "scheduler": "dpm++", "batch": 1,
                      "dtype": "auto", "compile": False, "shard_size": 4, "sheet": {"images": 1, "tile_height": 32}})  # fmt: skip
    pipe = load_pipeline(find_weights(settings.model), settings, torch.device("cpu"))
    row = {"prompt": "A high quality photo; europe; City, car, road, fog/mist", "negative_prompt": "", "seed": 7}
    return pipe, settings, row, source


def test_depth_model_synthesizes_from_the_manifest_depth(depth_inputs):
    pipe, settings, row, source = depth_inputs
    assert source["depth"].endswith(".png")
    image = generate(pipe, settings, [row], [source])[0]
    assert image.shape == (64, 128, 3) and image.dtype == np.uint8  # resized back to the source's size
    assert image.std() > 1  # not a blank image


def test_changing_the_depth_map_changes_the_layout(depth_inputs, tmp_path):
    """One seed and prompt, two depth maps (the source's and its mirror image): the images differ, and only through
    the depth input: with its conv_in weights zeroed, the two are the same."""
    pipe, settings, row, source = depth_inputs
    mirrored = tmp_path / "mirrored.png"
    cv2.imwrite(str(mirrored), cv2.imread(source["depth"], cv2.IMREAD_UNCHANGED)[:, ::-1])
    sources = [source, {**source, "depth": str(mirrored)}]
    first, second = (generate(pipe, settings, [row], [s])[0].astype(int) for s in sources)
    assert np.abs(first - second).mean() > 0.25, np.abs(first - second).mean()  # levels of 255, tiny model
    weight = pipe.unet.conv_in.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight[:, 4:] = 0
    try:
        blind = [generate(pipe, settings, [row], [s])[0] for s in sources]
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert np.array_equal(blind[0], blind[1])


def test_stage_logs_the_loss_and_draws_a_sheet_per_condition(trained):
    project, _ = trained
    loss = pd.read_csv(project / LOSS)
    assert list(loss.columns) == ["step", "phase", "loss"]
    assert loss["step"].is_monotonic_increasing
    assert loss["step"].iloc[-1] == TINY["vae_steps"] + TINY["unet_steps"] + TINY["depth_steps"]
    assert loss.loc[loss["phase"] == "vae", "step"].max() == TINY["vae_steps"]
    assert loss.loc[loss["phase"] == "unet", "step"].max() == TINY["vae_steps"] + TINY["unet_steps"]
    unet = loss.loc[loss["phase"] == "unet", "loss"].to_numpy()
    quarter = max(1, len(unet) // 4)
    assert unet[-quarter:].mean() < unet[:quarter].mean()
    sheets = sorted(p.name for p in (project / SAMPLES).iterdir())
    assert sheets == ["fog-mist.png", "stormy.png", "sunny.png"]
    sheet = cv2.imread(str(project / SAMPLES / "fog-mist.png"))
    # rows of 128 px tiles: corpus image and VAE, text-to-image, held-out streets, depth-to-image at 3 strengths
    assert sheet.shape[0] == 6 * (128 + 2)
    assert not [p for p in project.rglob(".*.tmp")]


def test_stage_skips_when_synthesis_uses_other_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params({**PARAMS, "synthesize": {"model": "stabilityai/stable-diffusion-2-base"}})
    summary = stage.run()
    assert summary.startswith("skipped: synthesize.model is 'stabilityai/stable-diffusion-2-base'")
    for out in (OUT, OUT_DEPTH):
        assert [p.name for p in out.iterdir()] == ["README.md"]
        assert "stabilityai/stable-diffusion-2-base" in (out / "README.md").read_text()
    assert SAMPLES.is_dir() and not list(SAMPLES.iterdir())
    assert LOSS.read_text() == "step,phase,loss\n"


def _with(path: tuple[str, ...], value) -> dict:
    params = copy.deepcopy(PARAMS)
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return params


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(("generator", "sizes", "steps"), 10, ["params.yaml generator.sizes", "unknown key 'steps'",
                                                          "generator.sizes takes: images"], id="unknown-size-key"),
        pytest.param(("generator", "conditions", "hail"), {"condition": "hail"},
                     ["generator.conditions.hail", "unknown condition 'hail'", "use one of: clear, fog"],
                     id="unknown-world-condition"),
        pytest.param(("generator", "conditions", "fog/mist", "params"), {"density": [1, 2]},
                     ["generator.conditions.fog/mist", "unknown fog parameter 'density'",
                      "fog takes: visibility, airlight"], id="unknown-parameter"),
        pytest.param(("generator", "conditions", "fog/mist", "params"), {"visibility": 80},
                     ["fog parameter 'visibility' must be a range [low, high], got 80", "visibility: [25.0, 60.0]"],
                     id="parameter-not-a-range"),
        pytest.param(("generator", "sizes", "height"), 30,
                     ["generator.sizes", "30x64", "multiples of 8"], id="indivisible-size"),
        pytest.param(("generator", "samples"), 0, ["generator.samples", "not a positive integer"], id="no-samples"),
        pytest.param(("generator", "sizes", "unet_attention"), [True], ["generator.sizes.unet_attention",
                     "[True] is not one true/false per UNet level", "a list of 2 booleans"], id="attention-levels"),
        pytest.param(("generator", "sizes", "vae_attention"), "no", ["generator.sizes.vae_attention",
                     "'no' is not true or false"], id="vae-attention-not-a-flag"),
        pytest.param(("generator", "sizes", "train_text"), 1, ["generator.sizes.train_text",
                     "1 is not true or false"], id="train-text-not-a-flag"),
    ],
)  # fmt: skip
def test_bad_settings_exit_2_and_write_nothing(tmp_path, monkeypatch, path, value, expected):
    monkeypatch.chdir(tmp_path)
    write_params(_with(path, value))
    result = CliRunner().invoke(app, ["generator"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and " (fix: " in result.stderr
    for fragment in expected:
        assert fragment in result.stderr
    assert not Path("models").exists() and not Path("reports").exists()
