"""scripts/evidence.py's own logic: the params a run changes, the table of variants it assembles from the runs'
metrics files, the aims' check (the runs themselves are the default profile's stages, tested elsewhere), and how it
takes a machine's own outputs from DVC's run-cache when the committed dvc.lock was made on another machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from evidence import FULL, FULLS, LONG, PREVIOUS, RUNS, aims, forget_missing, set_params, variants  # noqa: E402


def scores(miou: float) -> dict:
    return {"world_a_fog": {"mIoU": miou, "mIoU_std": 0.5}, "target_mean": {"mIoU": miou, "mIoU_std": 0.5}}


def test_set_params_changes_nested_keys_and_keeps_the_rest(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  seeds: [0]\n  drsf: {use_dfdr: true, mdsf_weight: 0.1}\n"
                    "det: {seeds: [0]}\nfilter: {enabled: true}\n")  # fmt: skip
    set_params(path, RUNS["seg-no-dfdr"])
    params = yaml.safe_load(path.read_text())
    assert params["train"]["seeds"] == [0, 1, 2]
    assert params["train"]["methods"] == ["drsf"]
    assert params["train"]["drsf"] == {"use_dfdr": False, "mdsf_weight": 0.1}
    assert params["det"]["seeds"] == []
    assert params["filter"] == {"enabled": True}


@pytest.mark.parametrize("run, steps", [("seg-900-iters", 1600), ("seg-unet-400-900-iters", 400)])
def test_the_long_runs_train_every_method_three_times_as_long_with_their_generator(tmp_path, run, steps):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  methods: [naive, drsf]\n  seeds: [0]\n  common: {iters: 300, lr: 0.0006}\n"
                    "det: {seeds: [0]}\ngenerator: {sizes: {unet_steps: 1600, lr: 0.001}}\n")  # fmt: skip
    set_params(path, RUNS[run])
    params = yaml.safe_load(path.read_text())
    assert params["train"] == {"methods": ["naive", "drsf"], "seeds": [0, 1, 2], "common": {"iters": 900, "lr": 0.0006}}
    assert params["det"]["seeds"] == []
    assert params["generator"] == {"sizes": {"unet_steps": steps, "lr": 0.001}}


def test_variants_put_each_changed_method_beside_the_full_one_of_the_same_generator(tmp_path):
    full = {"source": scores(10.0), "source_aug": scores(10.5), "naive": scores(11.0), "drsf": scores(12.0),
            "didex": scores(13.0), "diga": scores(14.0)}  # fmt: skip
    previous = {method: scores(value - 5.0) for method, value in (("source", 15.0), ("source_aug", 15.5),
                                                                  ("naive", 16.0), ("drsf", 17.0), ("didex", 18.0),
                                                                  ("diga", 19.0))}  # fmt: skip
    (tmp_path / f"{FULL}.json").write_text(json.dumps({"seg": full}))
    (tmp_path / f"{PREVIOUS}.json").write_text(json.dumps({"seg": previous}))
    (tmp_path / f"{LONG}.json").write_text(json.dumps({"seg": {m: scores(30.0) for m in full}}))
    for name in RUNS:
        if name.startswith("seg-") and name not in FULLS:
            methods = RUNS[name]["train.methods"]
            run = {"source": scores(10.0), **{m: scores(20.0 + i) for i, m in enumerate(methods)}}
            (tmp_path / f"{name}.json").write_text(json.dumps({"seg": run}))
    table = variants(tmp_path, FULL)["seg"]
    assert list(table) == ["source", "naive", "naive-no-filter", "naive-strength-0.9", "naive-augment", "drsf",
                           "drsf-no-dfdr", "drsf-no-mdsf", "drsf-no-filter", "drsf-strength-0.9", "drsf-augment",
                           "didex", "didex-strength-0.9", "didex-augment", "diga", "diga-augment"]  # fmt: skip
    assert table["source"] == full["source"] and table["drsf"] == full["drsf"]
    assert table["drsf-no-dfdr"]["target_mean"]["mIoU"] == 20.0
    assert table["drsf-no-filter"]["target_mean"]["mIoU"] == 21.0
    table = variants(tmp_path, PREVIOUS)["seg"]
    assert list(table) == ["source", "naive", "naive-no-filter", "naive-strength-0.9", "naive-augment", "drsf",
                           "drsf-no-dfdr", "drsf-no-mdsf", "drsf-no-filter", "drsf-strength-0.9", "drsf-augment",
                           "didex", "didex-strength-0.9", "didex-augment", "diga", "diga-augment"]  # fmt: skip
    assert table["source"] == previous["source"] and table["didex"] == previous["didex"]
    assert table["didex-strength-0.9"]["target_mean"]["mIoU"] == 22.0
    table = variants(tmp_path, LONG)["seg"]
    assert list(table) == ["source", "naive", "naive-no-filter", "drsf", "drsf-no-dfdr", "drsf-no-mdsf",
                           "drsf-no-filter"]  # fmt: skip
    assert table["drsf"]["target_mean"]["mIoU"] == 30.0 and table["drsf-no-mdsf"]["target_mean"]["mIoU"] == 20.0


def test_aims_are_checked_on_the_target_mean():
    def method(mean: float, std: float) -> dict:
        return {"world_a_fog": {"mIoU": 0.0, "mIoU_std": 0.0}, "target_mean": {"mIoU": mean, "mIoU_std": std}}

    seg = {"source": method(10.0, 0.1), "source_aug": method(15.0, 0.2), "naive": method(16.0, 0.5),
           "drsf": method(17.5, 0.4), "didex": method(20.0, 0.3), "diga": method(14.0, 0.2)}  # fmt: skip
    assert aims(seg) == ["best method didex: +10.0 over source-only (aim +10): met",
                         "above source_aug (15.0): NOT met (below it: diga 14.0)",
                         "drsf - naive = +1.5, two stds 1.0: met"]  # fmt: skip
    seg["drsf"] = method(16.9, 0.1)
    assert aims(seg)[2] == "drsf - naive = +0.9, two stds 1.0: NOT met"


def test_a_run_not_made_yet_is_left_out(tmp_path):
    full = {m: scores(10.0) for m in ("source", "naive", "drsf", "didex", "diga")}
    (tmp_path / f"{FULL}.json").write_text(json.dumps({"seg": full}))
    (tmp_path / "seg-no-dfdr.json").write_text(json.dumps({"seg": {"source": scores(10.0), "drsf": scores(9.0)}}))
    assert list(variants(tmp_path, FULL)["seg"]) == ["source", "drsf", "drsf-no-dfdr"]


# Two stages: `same` writes the same bytes on every machine, `differs` bytes that depend on the machine (MACHINE).
# (DVC's run-cache keeps only stages with a dependency: a file `input`.)
STAGES = {"stages": {name: {"cmd": f"python -c \"import os; open('{name}.txt', 'w').write({text})\"",
                            "deps": ["input"], "outs": [f"{name}.txt"]}
                     for name, text in (("same", "'x'"), ("differs", "os.environ['MACHINE']"))}}  # fmt: skip


def test_a_lock_made_on_another_machine_gives_way_to_this_machines_run_cache(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def run(*args: str, machine: str = "a") -> str:
        done = subprocess.run(args, cwd=tmp_path, env={**env, "MACHINE": machine}, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(STAGES))
    (tmp_path / "input").write_text("the same code and params")
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "config", "core.analytics", "false")
    run("dvc", "repro")  # machine a commits its dvc.lock
    committed = (tmp_path / "dvc.lock").read_text()
    for folder in ("files", "runs"):  # machine b: a cache of its own, filled by its own `dvc repro`
        shutil.rmtree(tmp_path / ".dvc" / "cache" / folder, ignore_errors=True)
    run("dvc", "repro", "--force", machine="b")
    (tmp_path / "dvc.lock").write_text(committed)  # the worktree of the commit, on machine b
    (tmp_path / "differs.txt").unlink()

    assert forget_missing(tmp_path, {**env, "MACHINE": "b"}) == ["same"]  # its output is in b's cache too
    assert "differs" not in yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]
    output = run("dvc", "repro", machine="c")  # c: what running the stage again would write
    assert "Stage 'differs' is cached - skipping run" in output
    assert (tmp_path / "differs.txt").read_text() == "b"
    assert "Running stage" not in output
