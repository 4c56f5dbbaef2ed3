"""A researcher's day in a temporary repo: a committed baseline, `dvc exp run -S` with two values of a parameter,
`dvc exp show` and `dvc metrics diff` listing the changed metrics, two queued experiments run by `dvc queue start`,
and the outputs shared through a local-folder DVC remote: a fresh clone pulls them and `dvc repro` is a no-op."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from test_dvc import PARAMS, SCORED, _ran, _run, make_repo

pytestmark = pytest.mark.slow

FOG = "data.domains.fog.splits.val"  # a parameter whose change reruns data@fog, gallery, evaluate and report only
KEY = "seg.source.fog.aAcc"  # a tiny model: its mIoU can tie on 3 and 4 images, its pixel accuracy does not


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """The tiny project run once and committed with its dvc.lock and metrics, as the project ships its baseline."""
    params = copy.deepcopy(PARAMS)
    params["det"]["methods"] = []  # detection's source-only run stays in the DAG; its methods add nothing here
    repo = make_repo(tmp_path_factory.mktemp("day"), params)
    _run(repo, "dvc", "repro")
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "baseline")
    return repo


def _flat(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}"""
    out = {}
    for key, value in tree.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _experiments(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json`: experiment name -> its flat params and metrics."""
    out = {}
    for commit in json.loads(_run(repo, "dvc", "exp", "show", "--json")):
        for exp in commit.get("experiments") or []:
            for revision in exp["revs"]:
                data = revision["data"]
                out[revision["name"]] = {**_flat(data["params"]["params.yaml"]["data"]),
                                         **_flat(data["metrics"]["reports/metrics.json"]["data"])}  # fmt: skip
    return out


def test_two_values_of_a_parameter_as_experiments(baseline: Path):
    assert KEY in _run(baseline, "dvc", "metrics", "show")  # the committed baseline, before any experiment
    for value in (3, 4):
        ran = _ran(_run(baseline, "dvc", "exp", "run", "-n", f"fog-{value}", "-S", f"{FOG}={value}"))
        assert ran == {"data@fog", "gallery", *SCORED - {"score-det@drsf-0"}, "evaluate", "report"}
    shown = _experiments(baseline)
    assert shown["fog-3"][FOG] == 3 and shown["fog-4"][FOG] == 4
    assert shown["fog-3"][KEY] != shown["fog-4"][KEY]
    diff = json.loads(_run(baseline, "dvc", "metrics", "diff", "fog-3", "fog-4", "--json"))["reports/metrics.json"]
    assert diff[KEY]["old"] == shown["fog-3"][KEY] and diff[KEY]["new"] == shown["fog-4"][KEY]
    assert "seg.source.src.aAcc" not in diff  # the source domain's images did not change
    # the workspace holds fog-4's results: `dvc metrics diff` compares them with the committed baseline
    against_baseline = json.loads(_run(baseline, "dvc", "metrics", "diff", "--json"))["reports/metrics.json"]
    assert against_baseline[KEY]["new"] == shown["fog-4"][KEY]


def test_queued_experiments_run_with_queue_start(baseline: Path):
    for value in (5, 6):
        _run(baseline, "dvc", "exp", "run", "--queue", "-n", f"queued-{value}", "-S", f"{FOG}={value}")
    _run(baseline, "dvc", "queue", "start", "--jobs", "1")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = _run(baseline, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") >= 2, status
    shown = _experiments(baseline)
    assert shown["queued-5"][FOG] == 5 and shown["queued-6"][FOG] == 6
    assert shown["queued-5"][KEY] != shown["queued-6"][KEY]


def test_a_local_remote_shares_the_outputs_with_a_fresh_clone(baseline: Path, tmp_path):
    _run(baseline, "git", "checkout", "--", ".")  # back to the committed baseline
    _run(baseline, "dvc", "checkout", "--force")
    _run(baseline, "dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    _run(baseline, "git", "commit", "-q", "-am", "a shared remote")
    _run(baseline, "dvc", "push")
    clone = tmp_path / "clone"
    _run(tmp_path, "git", "clone", "-q", str(baseline), str(clone))
    assert not (clone / "models/seg/source-s0").exists()
    _run(clone, "dvc", "pull")
    assert (clone / "models/seg/source-s0/model.pth").read_bytes() == (
        baseline / "models/seg/source-s0/model.pth").read_bytes()  # fmt: skip
    assert not _ran(_run(clone, "dvc", "repro"))
    assert _run(clone, "dvc", "status").strip().endswith("up to date.")
