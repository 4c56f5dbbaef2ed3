"""The `report` stage on a hand-made reports tree, checked in headless Chromium: every image loads, every table cell
holds its metrics.json key and value, every score is on the page, nothing is fetched from a network; the check
catches a broken page; absent inputs say so; a missing metrics.json is an InputError."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline.errors import InputError
from pipeline.report.build import revision
from pipeline.report.tables import leaves
from stages import report
from stages.cli import app

PARAMS = {"data": {"source": "src", "targets": ["fog", "night"]}, "report": {"samples": 2, "title": "test report"}}
DOMAINS = ["src", "fog", "night", "target_mean"]
MARK_IMAGES = ("<script>window.addEventListener('load', () => { for (const img of document.images) "
               "img.setAttribute('data-natural-width', img.naturalWidth); });</script>")  # fmt: skip


def fake_metrics(tasks: tuple[str, ...] = ("seg", "det")) -> dict:
    """2 methods x 3 domains and the target mean per task; distinct values, so a swapped cell shows."""
    rng = np.random.default_rng(0)
    scores = {"seg": ["mIoU", "aAcc"], "det": ["mAP50"]}
    return {task: {method: {domain: {**{s: round(float(rng.uniform(0, 90)), 2) for s in scores[task]},
                                     f"{scores[task][0]}_std": round(float(rng.uniform(0, 2)), 2)}
                            for domain in DOMAINS} for method in ("source", "drsf")} for task in tasks}  # fmt: skip


def png(path: Path, size: tuple[int, int] = (24, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 80, 40)).save(path)


def tsv(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"step\t{name}\n10\t1.5\n20\t1.1\n30\t0.9\n")


def project(root: Path, metrics: dict | None, full: bool = True) -> Path:
    """A project folder with params.yaml, `metrics` (None: no metrics.json) and, when `full`, every other input."""
    reports = root / "reports"
    reports.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    if metrics is not None:
        (reports / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if not full:
        return root
    for name in ["seg/per_class.png", "seg/gallery/src.png", "seg/gallery/fog.png", "seg/gallery/night.png",
                 "det/gallery/src.png", "det/gallery/fog.png", "synthesize/sheets/fog-mist.png",
                 "synthesize/sheets/night.png", "synthesize/layout.png", "filter/sheet.png", "filter/histograms.png"]:  # fmt: skip
        png(reports / name)
    conditions = ["fog/mist", "night", "fog/mist", "night", "fog/mist"]
    ids = [f"{i:06d}" for i in range(len(conditions))]
    (root / "data").mkdir()
    pd.DataFrame({"id": ids, "prompt": [f"A photo; <b>{c}</b>" for c in conditions], "condition": conditions,
                  "seed": range(5)}).to_parquet(root / "data" / "prompts.parquet")  # fmt: skip
    scores = pd.DataFrame({"id": ["src-val-0", *ids], "set": ["source", *["synthetic"] * 5],
                           "mahalanobis": [40.0, 110.5, 120.25, 300.0, 130.0, 99.0], "frechet": 0.1, "miou": 20.0,
                           "condition": ["source (val)", *conditions], "quantile": [None, 0.1, 0.2, 0.95, 0.4, 0.5],
                           "reason": [None, None, None, "far: mahalanobis", None, None],
                           "kept": [True, True, True, False, True, True]})  # fmt: skip
    scores.to_csv(reports / "filter" / "scores.csv", index=False)
    (reports / "filter" / "conditions.csv").write_text("condition,images,kept,rejected\nfog/mist,3,3,0\nnight,2,1,1\n")
    tsv(reports / "train/source-s0/plots/metrics/loss.tsv", "loss")
    tsv(reports / "train/drsf-s0/plots/metrics/decode.acc_seg.tsv", "decode.acc_seg")
    tsv(reports / "det-train/drsf-s1/plots/metrics/train/loss_cls.tsv", "loss_cls")  # a nested DVCLive name
    return root


def run_report(root: Path, monkeypatch) -> str:
    monkeypatch.chdir(root)
    return report.run()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium: found on PATH, or installed with apt-get when running as root; otherwise the test fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(command, check=True, capture_output=True, timeout=1200, env=env)
        found = shutil.which("chromium")
    if not found:
        pytest.fail("no chromium on PATH: install Debian's chromium (`apt-get install -y chromium`) for this test")
    return found


def rendered(chromium: str, page: Path, profile: Path) -> str:
    """The DOM of `page` after load, from a copy beside it that marks each <img> with its naturalWidth."""
    check = page.with_name("check-" + page.name)
    check.write_text(page.read_text().replace("</body>", MARK_IMAGES + "</body>"))
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                             "--virtual-time-budget=10000", "--dump-dom", check.as_uri()],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "<body" in result.stdout, result.stderr[-2000:]
    return result.stdout


class Dom(HTMLParser):
    """The parts of a page the check reads: images, score cells, and every src/href."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.cells, self.links, self._cell = [], [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[a] for a in ("src", "href") if attrs.get(a)]
        if tag == "img":
            self.images.append(attrs)
        if tag == "td" and "data-key" in attrs:
            self._cell = {**attrs, "text": ""}
            self.cells.append(self._cell)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None


def problems(dom: str, metrics: dict) -> list[str]:
    """What is wrong with a rendered report against `metrics`: an image that did not load, a cell whose value,
    std or text differs from metrics.json (one problem per cell), a score missing from the page, a network link."""
    page, flat, out = Dom(dom), dict(leaves(metrics)), []
    out += [f"image not loaded: {img['src']}" for img in page.images if img.get("data-natural-width", "0") == "0"]
    for cell in page.cells:
        key, std_key = cell["data-key"], cell.get("data-std-key")
        value, std = float(cell["data-value"]), float(cell["data-std-value"]) if std_key else None
        text = f"{value:.1f}" + ("" if std is None else f" ± {std:.1f}")
        if value != flat.get(key):
            out.append(f"{key}: page {value}, metrics.json {flat.get(key)}")
        elif std_key and std != flat.get(std_key):
            out.append(f"{std_key}: page {std}, metrics.json {flat.get(std_key)}")
        elif cell["text"].strip() != text:
            out.append(f"{key}: shows {cell['text'].strip()!r}, not {text!r}")
    shown = {c["data-key"] for c in page.cells} | {c["data-std-key"] for c in page.cells if "data-std-key" in c}
    out += [f"not on the page: {key}" for key in flat if key not in shown]
    out += [f"network link: {link}" for link in page.links if link.split(":")[0] in ("http", "https") or "//" in link]
    return out


def test_report_page_loads_every_image_and_holds_every_score(tmp_path, monkeypatch, chromium):
    metrics = fake_metrics()
    root = project(tmp_path / "project", metrics)
    (root / "reports" / "report").mkdir()
    png(root / "reports" / "report" / "stale.png")
    assert run_report(root, monkeypatch).startswith("wrote reports/index.html and reports/summary.md: 3 tables")
    reports = root / "reports"
    dom = rendered(chromium, reports / "index.html", tmp_path / "chromium")
    assert problems(dom, metrics) == []
    page = Dom(dom)
    sources = {img["src"] for img in page.images}
    assert {"report/domain_gap_seg.png", "report/domain_gap_det.png", "report/curves_seg.png", "report/curves_det.png",
            "seg/per_class.png", "seg/gallery/fog.png", "det/gallery/src.png", "synthesize/sheets/fog-mist.png",
            "synthesize/layout.png", "filter/sheet.png"} <= sources  # fmt: skip
    assert sorted(p.name for p in (reports / "report").iterdir()) == [
        "curves_det.png", "curves_seg.png", "domain_gap_det.png", "domain_gap_seg.png"]  # the stale file is gone
    html = (reports / "index.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "A photo; &lt;b&gt;fog/mist&lt;/b&gt;" in html and "far: mahalanobis" in html  # prompts and scores
    assert "<pre>data:" in html and "git revision: <code>unknown</code>" in html  # params.yaml, outside git
    # the best mean of each column is marked
    best = {c["data-key"] for c in page.cells if c.get("class") == "best"}
    for task, score in (("seg", "mIoU"), ("seg", "aAcc"), ("det", "mAP50")):
        for domain in DOMAINS:
            winner = max(metrics[task], key=lambda m: metrics[task][m][domain][score])
            column = {f"{task}.{m}.{domain}.{score}" for m in metrics[task]}
            assert column & best == {f"{task}.{winner}.{domain}.{score}"}
    summary = (reports / "summary.md").read_text()
    cell = metrics["seg"]["drsf"]["fog"]
    assert f"{cell['mIoU']:.1f} ± {cell['mIoU_std']:.1f}" in summary and "**" in summary
    assert "- [Segmentation: source vs each target](report/domain_gap_seg.png)" in summary


def test_check_catches_a_missing_image_and_a_wrong_number(tmp_path, monkeypatch, chromium):
    metrics = fake_metrics()
    root = project(tmp_path / "project", metrics)
    run_report(root, monkeypatch)
    reports = root / "reports"
    (reports / "seg" / "gallery" / "fog.png").unlink()
    cell = metrics["seg"]["drsf"]["fog"]
    right = f'data-key="seg.drsf.fog.mIoU" data-value="{cell["mIoU"]}"'
    html = (reports / "index.html").read_text()
    start, wrong = html.index(right), cell["mIoU"] + 10
    end = html.index("</td>", start)
    td = html[start:end].replace(right, f'data-key="seg.drsf.fog.mIoU" data-value="{wrong}"')
    td = td.replace(f">{cell['mIoU']:.1f} ± ", f">{wrong:.1f} ± ")  # a consistently wrong cell: only its value is off
    (reports / "index.html").write_text(html[:start] + td + html[end:])
    dom = rendered(chromium, reports / "index.html", tmp_path / "chromium")
    assert problems(dom, metrics) == ["image not loaded: seg/gallery/fog.png",
                                      f"seg.drsf.fog.mIoU: page {wrong}, metrics.json {cell['mIoU']}"]  # fmt: skip


def test_absent_inputs_say_not_produced(tmp_path, monkeypatch, chromium):
    metrics = fake_metrics(("det",))  # a detection-only run with nothing else written
    root = project(tmp_path / "project", metrics, full=False)
    assert "1 tables, 1 figures" in run_report(root, monkeypatch)
    reports = root / "reports"
    dom = rendered(chromium, reports / "index.html", tmp_path / "chromium")
    assert problems(dom, metrics) == []
    html = (reports / "index.html").read_text()
    for what in ["Segmentation: source vs each target", "Segmentation: IoU per class on the targets",
                 "synthetic images, prompts and filter scores", "kept and rejected counts per condition",
                 "kept vs rejected synthetic images", "Segmentation prediction galleries", "Detection training curves"]:
        assert f"{what}: not produced by this run." in html
    assert run_report(root, monkeypatch).endswith("1 tables, 1 figures")  # again, over its own outputs

    (reports / "metrics.json").write_text("{}")  # evaluate with nothing to score
    assert "0 tables" in run_report(root, monkeypatch)
    assert "segmentation and detection scores: not produced by this run." in (reports / "summary.md").read_text()


def test_missing_or_bad_metrics_is_an_input_error(tmp_path, monkeypatch):
    root = project(tmp_path / "project", None, full=False)
    with pytest.raises(InputError) as error:
        run_report(root, monkeypatch)
    assert error.value.where == str(Path("reports/metrics.json")) and "dvc repro evaluate" in error.value.fix
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 2 and "reports/metrics.json: missing" in result.output
    (root / "reports" / "metrics.json").write_text(json.dumps({"seg": {"source": {"src": {"mIoU": "high"}}}}))
    with pytest.raises(InputError, match="seg.source.src.mIoU"):
        report.run()
    assert not (root / "reports" / "index.html").exists()


def test_bad_report_params_are_input_errors(tmp_path, monkeypatch):
    root = project(tmp_path / "project", fake_metrics(), full=False)
    monkeypatch.chdir(root)
    for section, problem in [({"samples": -1, "title": "t"}, "not a whole number"), ({"samples": 1}, "no `report.title`"),
                             ({"samples": 1, "title": "t", "extra": 1}, "unknown key 'extra'")]:  # fmt: skip
        (root / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "report": section}))
        with pytest.raises(InputError, match=problem):
            report.run()


def test_revision_says_dirty_and_unknown(tmp_path):
    assert revision(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    (tmp_path / "a.txt").write_text("a")
    for command in (["init", "-q"], ["add", "a.txt"], ["commit", "-q", "-m", "a"]):
        subprocess.run(git + command, check=True, capture_output=True, timeout=60)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, timeout=60).stdout.strip()
    assert revision(tmp_path) == head
    (tmp_path / "a.txt").write_text("b")
    assert revision(tmp_path) == f"{head} dirty"
