"""The `dgsynth` command: one subcommand per DVC stage, plus `doctor`. Bad input exits with code 2 and a fix."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from pipeline.errors import InputError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _fail(error: InputError) -> None:
    """One line on stderr (where, what, the fix), then exit code 2."""
    typer.secho(f"error: {error.where}: {error.problem} (fix: {error.fix})", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _run(stage: str, *args) -> None:
    """Run `stages.<stage>.run(*args)` and print what it returns (a short summary of what was written)."""
    try:
        typer.echo(importlib.import_module(f"stages.{stage}").run(*args))
    except InputError as error:
        _fail(error)


@app.command()
def data(
    domain: str = typer.Argument(..., help="a key of `data.domains` in params.yaml"),
    workers: int = typer.Option(os.cpu_count() or 1, help="processes that render world images or convert a data set"),
) -> None:
    """Build data/domains/DOMAIN: manifests per split, with rendered (world) or converted (real data) files."""
    from stages import data as stage

    try:
        counts = stage.run(domain, workers)
    except InputError as error:
        _fail(error)
    typer.echo(f"{domain}: " + ", ".join(f"{split} {n} images" for split, n in counts.items()))


@app.command()
def gallery() -> None:
    """Draw reports/data/gallery.png: a few images of every domain and one label overlay with boxes."""
    _run("gallery")


@app.command()
def prompts() -> None:
    """Write data/prompts.parquet: DIDEX-style prompts, one row per image to generate, with every factor and seed."""
    _run("prompts")


@app.command()
def generator() -> None:
    """Train the embedded default's small Stable Diffusion on the captioned world corpus into models/generator."""
    _run("generator")


@app.command()
def synthesize() -> None:
    """Generate data/synthetic/ (image shards and manifests) from the prompt table; resumes an interrupted run."""
    _run("synthesize")


@app.command(name="filter")
def filter_() -> None:
    """Score synthetic images against the source feature statistics: data/filtered/{kept,rejected}.parquet."""
    _run("filter")


@app.command()
def train(
    method: str = typer.Argument(..., help="seg: source, naive, drsf, didex or diga; det: source, naive, drsf or mt"),
    seed: int = typer.Option(0, help="the run's seed (model init, data order, augmentation)"),
    task: str = typer.Option("seg", help="seg (segmentation, params `train`) or det (detection, params `det`)"),
) -> None:
    """Train one model into models/TASK/METHOD-sSEED; resumes an interrupted run."""
    _run("train", method, seed, task)


@app.command()
def score(
    method: str = typer.Argument(..., help="a trained model's method: source or one of `train.methods`/`det.methods`"),
    seed: int = typer.Option(0, help="the model's seed"),
    task: str = typer.Option("seg", help="seg (segmentation) or det (detection)"),
) -> None:
    """Score the model in models/TASK/METHOD-sSEED on every evaluated domain into reports/scores/TASK/."""
    _run("score", method, seed, task)


@app.command()
def evaluate() -> None:
    """Gather every model's scores: reports/metrics.json, and per task tables, a heatmap and galleries."""
    _run("evaluate")


@app.command()
def report() -> None:
    """Write reports/index.html (a static page that opens from disk) and reports/summary.md from the run's reports."""
    _run("report")


@app.command()
def doctor() -> None:
    """Print versions, the device, whether mmcv's compiled ops work, and where model weights are looked up."""
    from stages.doctor import report

    rows = report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")
    if not dict(rows)["mmcv ops"] == "ok":
        sys.exit(1)
