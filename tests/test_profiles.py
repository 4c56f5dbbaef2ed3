"""Profiles: `profiles.<profile>.<section>` laid over a section, refused where it would change the DAG, and every
shipped profile (smoke, default, paper) passing each stage's own settings checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dvc.utils import dict_sha256
from dvc_data.hashfile.meta import Meta

from pipeline.det.config import METHODS as DET_METHODS
from pipeline.errors import InputError
from pipeline.filter.rules import load_settings as filter_settings
from pipeline.generator.settings import load_size
from pipeline.prompts import check as check_prompts
from pipeline.seg.config import METHODS as SEG_METHODS
from pipeline.synthesis import check as synthesis_settings
from pipeline.training.settings import load_settings as train_settings
from stages import params, run_cache_blind

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())
SECTIONS = sorted(set(re.findall(r"profiles\.\$\{profile\}\.(\w+)", (ROOT / "dvc.yaml").read_text())))


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _project(profile: str, **profiles) -> dict:
    base = {
        "data": {"source": "src", "world": {"seed": 0, "height": 64, "width": 128},
                 "domains": {"src": {"format": "world", "splits": {"train": 10, "val": 4}}}},
        "train": {"methods": ["naive"], "seeds": [0], "common": {"iters": 300, "scale": [256, 128]}},
    }  # fmt: skip
    return {"profile": profile, "profiles": {"default": {"data": {}, "train": {}}, **profiles}, **base}


def test_a_profile_merges_mappings_and_replaces_values_and_lists(tmp_path):
    path = _write(tmp_path, _project("small", small={
        "data": {"world": {"height": 32}, "domains": {"src": {"splits": {"train": 2}}}},
        "train": {"common": {"iters": 5, "scale": [64, 32]}},
    }))  # fmt: skip
    data = params("data", path=path)
    assert data["world"] == {"seed": 0, "height": 32, "width": 128}
    assert data["domains"]["src"] == {"format": "world", "splits": {"train": 2, "val": 4}}
    assert params("train", path=path)["common"] == {"iters": 5, "scale": [64, 32]}
    assert params("train", path=_write(tmp_path, _project("default")))["common"]["iters"] == 300


@pytest.mark.parametrize(
    ("changes", "where", "fix"),
    [
        pytest.param({"train": {"seeds": [0, 1]}}, "profiles.small.train.seeds",
                     "set train.seeds in the `train` section itself", id="seeds"),
        pytest.param({"train": {"methods": []}}, "profiles.small.train.methods",
                     "set train.methods in the `train` section itself", id="methods"),
        pytest.param({"data": {"source": "other"}}, "profiles.small.data.source",
                     "set data.source in the `data` section itself", id="source"),
        pytest.param({"data": {"domains": {"new": {"format": "world"}}}}, "profiles.small.data.domains.new",
                     "declare new in data.domains, or remove it from profiles.small.data.domains",
                     id="new-domain"),
    ],
)  # fmt: skip
def test_a_profile_cannot_change_the_dag(tmp_path, changes, where, fix):
    path = _write(tmp_path, _project("small", small={"data": {}, "train": {}, **changes}))
    section = next(iter(changes))
    with pytest.raises(InputError, match=re.escape(where)) as error:
        params(section, path=path)
    assert f"fix: {fix}" in str(error.value)


def test_unknown_profile_and_missing_section_entry_name_the_fix(tmp_path):
    with pytest.raises(InputError, match="(?s)unknown profile 'huge'.*use one of: default, small"):
        params("data", path=_write(tmp_path, _project("huge", small={"data": {}, "train": {}})))
    with pytest.raises(InputError, match=r"(?s)profiles.small.*no `train` entry.*add `train: \{\}`"):
        params("train", path=_write(tmp_path, _project("small", small={"data": {}})))


def test_a_params_key_that_dvcs_run_cache_drops_is_refused(tmp_path):
    """DVC's run-cache hashes a stage without its params keys named 'size' or 'nfiles', so two runs that differ only
    there share a run-cache entry (`dvc exp run -S generator.size.unet_steps=1600` once restored the default
    generator); dgsynth refuses such a key, in a section or in a profile's changes."""
    lock = {"cmd": "dgsynth generator", "params": {"params.yaml": {"generator": {"size": {"unet_steps": 400}}}}}
    other = {**lock, "params": {"params.yaml": {"generator": {"size": {"unet_steps": 1600}}}}}
    assert dict_sha256(lock, exclude=[Meta.PARAM_SIZE, Meta.PARAM_NFILES]) == dict_sha256(
        other, exclude=[Meta.PARAM_SIZE, Meta.PARAM_NFILES])  # the DVC behaviour this guards against
    project = _project("small", small={"data": {}, "train": {"common": {"nfiles": 3}}})
    project["data"]["world"]["size"] = 4
    with pytest.raises(InputError, match=r"(?s)data\.world\.size.*run-cache.*fix: rename the key"):
        params("data", path=_write(tmp_path, project))
    with pytest.raises(InputError, match=r"train\.common\.nfiles"):
        params("train", path=_write(tmp_path, project))
    assert params("train", path=_write(tmp_path, _project("small", small={"data": {}, "train": {}})))


def test_the_shipped_params_have_no_key_the_run_cache_drops():
    assert run_cache_blind(SHIPPED, "params") == ""

def test_every_shipped_profile_names_every_section_dvc_reads():
    assert {"data", "train", "det", "synthesize", "evaluate"} <= set(SECTIONS)
    for name, profile in SHIPPED["profiles"].items():
        assert sorted(profile) == SECTIONS, name


@pytest.mark.parametrize("profile", sorted(SHIPPED["profiles"]))
def test_every_shipped_profile_passes_the_stages_checks(tmp_path, monkeypatch, profile):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, {**SHIPPED, "profile": profile})
    for section in ("train", "det"):  # the paper profile's ImageNet weights, as a researcher would place them
        pretrained = params(section, path=path)["common"]["pretrained"]
        if pretrained:
            Path(pretrained).parent.mkdir(parents=True, exist_ok=True)
            Path(pretrained).write_bytes(b"")
    for methods in (SEG_METHODS, DET_METHODS):
        cfg = params(methods.section, path=path)
        for method in ("source", *cfg["methods"]):
            assert train_settings(cfg, method, methods).iters > 0
    assert synthesis_settings(params("synthesize", path=path)).steps > 0
    assert load_size(params("generator", path=path)).images > 0
    check_prompts(params("prompts", path=path))
    filter_settings(params("filter", path=path))
    data = params("data", path=path)
    assert set(data["domains"]) == set(SHIPPED["data"]["domains"])
