"""Hygiene: the source never trusts remote code and loads every checkpoint with `weights_only` (pipeline/mm.py's loader
trusts only the training run's own work dir), and a tiny run of every stage writes no absolute path (the home
folder, the project folder) and nothing token-like into its text outputs and manifests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from test_cli import dgsynth
from test_dvc import PARAMS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("pipeline", "stages") for p in (ROOT / folder).rglob("*.py"))
TEXT = {".csv", ".json", ".yaml", ".yml", ".md", ".html", ".txt", ".tsv", ".log"}
TOKEN = re.compile(r"hf_[A-Za-z0-9]{8,}|token", re.IGNORECASE)


def _calls(path: Path):
    """Every call in the file at `path`, with the name of the innermost function it is in ('' at module level)."""
    tree = ast.parse(path.read_text(), str(path))
    owner = {}
    for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        owner |= {node: function.name for node in ast.walk(function) if isinstance(node, ast.Call)}  # inner ones last
    return [(owner.get(node, ""), node) for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_no_remote_code_and_every_torch_load_is_weights_only():
    loads, trusts = [], []
    for path in SOURCES:
        name = str(path.relative_to(ROOT))
        assert not re.search(r"""["']trust_remote_code["']""", path.read_text()), name  # no dict-built kwargs
        for function, call in _calls(path):
            keywords = {k.arg: k.value for k in call.keywords}
            if "trust_remote_code" in keywords:
                assert ast.literal_eval(keywords["trust_remote_code"]) is False, f"{name}: {ast.unparse(call)}"
            callee = ast.unparse(call.func)
            if callee == "torch.load":
                loads.append((name, function, ast.unparse(keywords.get("weights_only", ast.Constant(None)))))
            if callee.endswith("trust_checkpoints_under"):
                trusts.append((name, ast.unparse(call.args[0])))
    assert loads == [("pipeline/det/evaluate.py", "load_detector", "True"),
                     ("pipeline/mm.py", "_load_local_checkpoint", "not trusted"),
                     ("pipeline/seg/evaluate.py", "load_model", "True")]  # fmt: skip
    # the one exception trusts only the folders registered with trust_checkpoints_under: the training run's work dir
    # (under .dgsynth/wip); tests/test_mm.py checks that any other file is loaded with weights_only=True
    assert trusts == [("pipeline/training/run.py", "work")]
    source = (ROOT / "pipeline/training/run.py").read_text()
    assert 'work = wip / f"train-{task.name}-{name}-' in source


@pytest.mark.mm
def test_a_run_writes_no_absolute_path_and_no_token(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # every stage once; of the paired methods only seg's naive (det's drsf would add 10 s and no other writer)
    Path("params.yaml").write_text(yaml.safe_dump({**PARAMS, "det": {**PARAMS["det"], "methods": []}}))
    for args in (["data", "src", "--workers", "1"], ["data", "fog", "--workers", "1"], ["gallery"], ["prompts"],
                 ["generator"], ["synthesize"], ["train", "source"], ["filter"], ["train", "naive"],
                 ["train", "source", "--task", "det"], ["score", "source"], ["score", "naive"],
                 ["score", "source", "--task", "det"], ["evaluate"]):  # fmt: skip
        result = dgsynth(*args)
        assert result.exit_code == 0, f"{args}: {result.output}"
    outputs = [p for folder in ("data", "models", "reports") for p in Path(folder).rglob("*") if p.is_file()]
    texts = {p: p.read_text() for p in outputs if p.suffix in TEXT}
    tables = {p: pq.read_table(p) for p in outputs if p.suffix == ".parquet"}
    assert {"data/domains/src/train.parquet", "data/synthetic/train.parquet", "data/filtered/kept.parquet",
            "data/prompts.parquet"} <= set(map(str, tables))  # fmt: skip
    assert {"reports/metrics.json", "reports/seg/domains.csv", "reports/det/scores.csv", "reports/filter/scores.csv",
            "models/seg/source-s0/config.json"} <= set(map(str, texts))  # fmt: skip
    for path, table in tables.items():  # every string in every column, nested ones (boxes' labels) included
        texts[path] = "\n".join(str(v) for column in table.columns for v in column.to_pylist())
    assert "images/train/00000.png" in texts[Path("data/domains/src/train.parquet")]  # paths relative to the manifest
    absolute = (str(Path.home()), str(tmp_path), str(tmp_path.resolve()))
    for path, text in texts.items():
        assert not [a for a in absolute if a in text], f"{path} holds an absolute path"
        if path.parts[0] != "models":  # the generator's tokenizer files name tokens by design
            assert not TOKEN.search(text), f"{path}: {TOKEN.search(text).group()}"
    assert not Path(".dgsynth/wip").exists() or not list(Path(".dgsynth/wip").iterdir())
