"""The speed benchmarks' quick modes: bench/dvc_scale.py on 2,000 images and bench/synthesize.py's tiny Stable
Diffusion run end to end and write JSON with both layouts or paths and positive times; bench/profile_train.py's
operator table ranks a known workload's heaviest kernel first; bench/profile_generator.py times every phase of the
generator stage's code on smoke sizes; bench/repro.py's stage and progress-bar times from a stamped log;
bench/kernels.py records NMS calls and only average-pooling RoIAlign calls, and finds both kernels' bits equal;
bench/threads.py times both tasks' tiny source-only runs on 2 threads, 1 thread and side by side; bench/captions.py
scores a smoke-size generator's colours per caption word, and its score is 1 for the corpus itself, 0 for one colour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.domains import build_domain

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str, cwd: Path = ROOT, env: dict | None = None) -> str:
    """stdout of `python bench/<script> args`, run from `cwd` (the project root, where it reads params.yaml) with
    `env` (default: this process's); a failure fails the test with its output."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_dvc_scale(tmp_path: Path) -> None:
    out = tmp_path / "dvc_scale.json"
    table = bench("dvc_scale.py", "--images", "2000", "--shard-size", "256", "--repeats", "1", "--out", str(out))
    result = json.loads(out.read_text())
    rows = {row["layout"]: row for row in result["rows"]}
    assert list(rows) == ["files", "packed"] and result["images"] == 2000
    shards = 8  # 2000 images in shards of 256
    assert rows["files"]["files"] == 2 * 2000 + shards + 1  # images and labels, shard manifests, train.parquet
    assert rows["packed"]["files"] == 2 * shards + 1  # a tar and a manifest per shard, train.parquet
    for row in rows.values():
        assert 0 < row["status_s"] < 60 and 0 < row["repro_s"] < 60 and len(row["status_runs_s"]) == 1
        assert row["meets_target"] == (row["status_s"] <= 3 and row["repro_s"] <= 3)
    assert len(result["machine"]["load_average_before"]) == 3 and result["commit"] and result["dvc"]
    assert "files" in table and "packed" in table and "status s" in table


def test_synthesize_tiny(tmp_path: Path) -> None:
    out = tmp_path / "synthesize-tiny.json"
    table = bench("synthesize.py", "--tiny", "--images", "2", "--batch", "2", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["sizes"] == "tiny" and result["size"] == [64, 64] and result["images"] == 2
    assert result["scheduler"] == "DPMSolverMultistepScheduler" and result["mode"] == "txt2img"
    plains = ["plain_fp32", "plain_fp16"] if torch.cuda.is_available() else ["plain_fp32"]
    assert list(result["paths"]) == ["ours", *plains] and list(result["speedup_vs_plain"]) == plains
    assert result["paths"]["ours"]["batch"] == 2 and all(p["img_s"] > 0 for p in result["paths"].values())
    assert set(result["parameters"]) == {"unet", "vae", "text_encoder"}
    assert "ours" in table and "plain_fp32" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: --gpu would run the full-size bench")
def test_synthesize_gpu_needs_cuda() -> None:
    done = subprocess.run([sys.executable, "bench/synthesize.py", "--gpu"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode != 0 and "needs a CUDA GPU" in done.stderr and "--tiny" in done.stderr


def test_schedule_refuses_fewer_images_than_a_batch() -> None:
    done = subprocess.run([sys.executable, "bench/schedule.py", "--images", "3", "--batch", "2", "4"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "--images 3 is less than a batch of 4 images: no iteration" in done.stderr


@pytest.mark.openblas_avx2
def test_world_bits_finds_no_difference_under_openblas_avx2_kernel(tmp_path: Path) -> None:
    """Under the kernel the fixed order is written after, np.convolve's tile draws the same images."""
    bench("world_bits.py", "--images", "2", cwd=tmp_path, env={**os.environ, "OPENBLAS_CORETYPE": "Haswell"})
    result = json.loads((tmp_path / "reports/bench/world_bits.json").read_text())
    assert result["total"] == {"images": 12, "images_differing": 0, "pixels_differing": 0}


def test_top_operators_ranks_the_heaviest_kernel() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from profile_train import top_operators

    big, small = torch.randn(384, 384), torch.randn(8, 8)
    rows = top_operators(lambda: (big @ big @ big, small + small), iters=3, count=2)
    assert [row["operator"] for row in rows][0] == "aten::mm"  # two 384^3 products outweigh an 8x8 add
    assert len(rows) == 2 and rows[0]["seconds"] >= rows[1]["seconds"] > 0
    assert 0.5 < rows[0]["share"] <= 1 and rows[0]["share"] + rows[1]["share"] <= 1 + 1e-9


def write_smoke_generator(folder: Path, words: list[str], **size) -> None:
    """params.yaml in `folder`: the generator at the smoke profile's sizes (laid over the default's key by key, as the
    profile is) with `size` changed, one sample per condition, the caption conditions `words` in that order."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    smoke = params["profiles"]["smoke"]["generator"]
    generator = {**params["generator"], **smoke, "samples": 1,
                 "sizes": {**params["generator"]["sizes"], **smoke["sizes"], **size},
                 "conditions": {word: params["generator"]["conditions"][word] for word in words}}  # fmt: skip
    (folder / "params.yaml").write_text(yaml.safe_dump({"generator": generator, "prompts": params["prompts"],
                                                        "synthesize": {"model": "models/generator-depth"}},
                                                       sort_keys=False))  # fmt: skip


def test_profile_generator_times_each_phase_of_the_stage_code(tmp_path: Path) -> None:
    write_smoke_generator(tmp_path, ["sunny", "fog/mist"])
    table = bench("profile_generator.py", "--steps", "1", "--warmup", "1", "--op-steps", "1", "--images", "8",
                  cwd=tmp_path)  # fmt: skip
    result = json.loads((tmp_path / "reports/bench/profile-generator.json").read_text())
    assert list(result["phases"]) == ["vae", "unet", "depth"] and result["size"] == {"height": 32, "width": 64,
                                                                                    "batch": 8}  # fmt: skip
    for phase, steps in (("vae", 20), ("unet", 40), ("depth", 20)):  # the smoke profile's step counts
        row = result["phases"][phase]
        seconds = row["seconds"]
        assert seconds["batch+forward+loss"] > 0 and seconds["backward"] > 0 and seconds["optimizer"] > 0
        assert seconds["other"] >= 0 and abs(sum(seconds[p] for p in row["share"]) - seconds["step"]) < 1e-9
        assert row["stage_steps"] == steps and row["stage_seconds"] == pytest.approx(steps * seconds["step"])
        assert row["operators"] and row["operators"][0]["seconds"] >= row["operators"][-1]["seconds"] > 0
    assert "aten::convolution_backward" in [op["operator"] for op in result["phases"]["vae"]["operators"]]
    assert result["samples_seconds"] > 0 and "sample sheets (1 images per condition, 2 conditions)" in table


def test_captions_scores_a_generator_per_caption_word(tmp_path: Path, monkeypatch) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from captions import fidelity

    from stages import generator as stage

    truth = {"rain": np.array([80.0, 80, 90]), "winter": np.array([150.0, 150, 150]), "evening": np.array([80, 60, 50])}
    same = fidelity(truth, truth)
    assert same["relative_spread"] == pytest.approx(1) and same["correlation"] == pytest.approx(1)
    alike = fidelity({word: np.full(3, 100.0) for word in truth}, truth)  # every word one colour
    assert alike["relative_spread"] == 0 and alike["correlation"] == 0
    half = fidelity({word: 0.5 * colour + 7 for word, colour in truth.items()}, truth)
    assert half["relative_spread"] == pytest.approx(0.5) and half["correlation"] == pytest.approx(1)

    write_smoke_generator(tmp_path, ["sunny", "rain", "winter"], images=24)
    monkeypatch.chdir(tmp_path)
    stage.run()
    table = bench("captions.py", "--count", "1", "--strengths", "0.5", cwd=tmp_path)
    result = json.loads((tmp_path / "reports/bench/captions.json").read_text())
    assert list(result["rows"]) == ["corpus", "text-to-image", "depth-to-image 0.5"]
    assert result["rows"]["corpus"]["relative_spread"] == pytest.approx(1)
    for row in result["rows"].values():
        assert list(row["mean_rgb"]) == ["sunny", "rain", "winter"] and row["relative_spread"] >= 0
    assert result["text_encoder_spread"]["fresh"] > 0 and "depth-to-image 0.5" in table


def test_repro_timings_from_a_stamped_log(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from repro import read_stamped, timings

    log = tmp_path / "repro.log"
    log.write_text("100.0 start\n101.0 Running stage 'data@world_a_clear':\n111.5 Running stage 'generator':\n"
                   "112.0 train vae:  50%|#    | 1/2 [00:30<00:30]\rtrain vae: 100%|#####| 2/2 [01:05<00:00, 1.0step/s]\n"
                   "241.0 Running stage 'train@naive-0':\n341.0 Running stage 'det-source@0':\n"
                   "379.0 source-s0 on fog:   0%| | 0/13 [00:00<?, ?batch/s]\n380.0 source-s0 on fog: 100%|#| 13/13 [00:04<00:00]\n"
                   "380.1 source-s0 on fog: 100%|#| 13/13 [00:04<00:00]\n381.0 source-s0 on fog:   0%| | 0/13 [00:00<?]\n"
                   "389.0 source-s0 on fog: 100%|#| 12/13 [00:08<00:01]\n390.0 source-s0 on fog: 100%|#| 13/13 [00:09<00:00]\n"
                   "400.0 Running stage 'report':\n402.0 end\n")  # fmt: skip
    result = timings(read_stamped(log))
    assert result["wall_s"] == 302.0
    assert result["stages_s"] == {"data@world_a_clear": 10.5, "generator": 129.5, "train@naive-0": 100.0,
                                  "det-source@0": 59.0, "report": 2.0}  # fmt: skip
    assert result["kinds_s"] == {"data": 10.5, "generator": 129.5, "segmentation training": 100.0,
                                 "detection training": 59.0, "other": 2.0}  # fmt: skip
    # a bar's last state, not the half-way one (nor 12/13, which tqdm shows as 100%); a finished bar redrawn (on close)
    # once; a second bar of one name (the other task's, started at 0) numbered
    assert result["bars_s"] == {"train vae": 65, "source-s0 on fog": 4, "source-s0 on fog (2)": 9}


@pytest.mark.mm
def test_kernels_bench_records_and_compares_calls() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from kernels import compare_nms, compare_roi_align, recorded
    from mmcv.ops import nms, roi_align

    from pipeline import mm

    mm.setup()
    features = torch.randn(2, 8, 16, 24)
    rois = torch.tensor([[0, 1.0, 2, 40, 30], [1, 10, 0, 90, 60], [1, 5, 5, 5, 5]])
    boxes, scores = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]]), torch.tensor([0.9, 0.8, 0.7])
    calls = recorded(lambda: (roi_align(features, rois, 7, 0.25, 0, "avg", True),
                              roi_align(features, rois, 7, 0.25, 0, "max", True), nms(boxes, scores, 0.5)))  # fmt: skip
    (call,) = calls["roi_align"]  # avg only
    assert torch.equal(call[0], features) and torch.equal(call[1], rois)
    (call,) = calls["nms"]
    assert torch.equal(call[0], boxes) and call[2] == {"iou_threshold": 0.5, "offset": 0}
    row = compare_roi_align(calls["roi_align"], repeats=2, backward=True)
    assert (row["calls"], row["items"], row["same_bits"]) == (1, 3, True)
    assert set(row["seconds"]) == {"mmcv forward", "dgsynth forward", "mmcv backward", "dgsynth backward"}
    assert all(seconds > 0 for seconds in row["seconds"].values())
    row = compare_nms(calls["nms"], repeats=2)
    assert (row["calls"], row["items"], row["same_bits"], set(row["seconds"])) == (
        1, 3, True, {"mmcv nms", "dgsynth nms"})  # fmt: skip

@pytest.mark.mm
@pytest.mark.slow
def test_threads_times_each_task_on_two_threads_one_and_side_by_side(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    world = {"seed": 0, "height": 64, "width": 128}
    build_domain("src", {"format": "world", "city": "a", "condition": "clear", "splits": {"train": 8}}, world,
                 tmp_path / "data/domains/src")  # fmt: skip
    tiny = {"arch": "tiny", "batch": 2, "scale": [128, 64], "crop": [64, 64]}
    sections = {s: {**params[s], "common": {**params[s]["common"], **tiny}} for s in ("train", "det")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"source": "src"}, **sections}))
    table = bench("threads.py", "--iters", "2", "--repeats", "1", cwd=tmp_path)
    result = json.loads((tmp_path / "reports/bench/threads.json").read_text())
    assert (result["iters"], result["repeats"], list(result["rows"])) == (2, 1, ["seg", "det"])
    for task, row in result["rows"].items():
        seconds, cpu = row["seconds_per_iteration"], row["cpu_per_wall_second"]
        assert (row["arch"], row["batch"], set(seconds), set(cpu)) == ("tiny", 2, {"2", "1"}, {"2", "1"})
        assert seconds["2"] > 0 and seconds["1"] > 0 and cpu["1"] > 0 and cpu["2"] > 0
        assert row["speed_up_of_2_threads"] == pytest.approx(seconds["1"] / seconds["2"])
        pair = row["iterations_per_second"]
        assert pair["one run, 2 threads"] == pytest.approx(1 / seconds["2"]) and pair["two runs, 1 thread each"] > 0
        assert row["side_by_side_gain"] == pytest.approx(pair["two runs, 1 thread each"] * seconds["2"])
        assert f"{task:<6}tiny" in table
