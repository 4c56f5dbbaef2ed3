"""The speed benchmarks' quick modes: bench/dvc_scale.py on 2,000 images and bench/synthesize.py's tiny Stable
Diffusion run end to end and write JSON with both layouts or paths and positive times."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str) -> str:
    """stdout of `python bench/<script> args`, run from the project root; a failure fails the test with its output."""
    done = subprocess.run([sys.executable, f"bench/{script}", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
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
