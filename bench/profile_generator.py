"""Benchmark: where the generator stage spends its time, phase by phase, at params.yaml's generator settings.

    python bench/profile_generator.py [--steps 12] [--warmup 4] [--op-steps 4] [--images 64]

Runs the stage's own code (pipeline.generator.train.train, then the sample sheets of pipeline.generator.samples) on a
corpus of `--images` images rendered at the stage's size (a training step's cost does not depend on the corpus's
size), each training phase (VAE, text-to-image UNet, depth UNet) cut to `warmup + steps + op-steps` steps. Each step
is timed in four parts: drawing the batch with the forward pass and the loss, the backward pass, the optimizer step,
and the rest (the learning-rate schedule, the loss log and the progress bar); medians over the `steps` after
`warmup`, and the phase's time at the stage's step count. Then torch's profiler over `op-steps` more steps gives each
phase's operators with the most CPU time of their own. Last, the sample sheets (generator.samples images per caption
condition, written after training; no model reads them) are timed as the stage writes them. Prints a table and writes
reports/bench/profile-generator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from profile_train import OPERATORS, operator_rows, print_operators
from provenance import commit, device
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import pipeline.generator.train as training
from pipeline.generator.corpus import build_corpus
from pipeline.generator.model import save
from pipeline.generator.samples import write_samples
from pipeline.generator.settings import load_conditions, load_samples, load_size, load_words
from pipeline.sd import build_components

OUT = Path("reports/bench/profile-generator.json")
PARTS = ("batch+forward+loss", "backward", "optimizer", "other")
STAGE_STEPS = {"vae": "vae_steps", "unet": "unet_steps", "depth": "depth_steps"}


class StepClock:
    """Time stamps of each training step's parts: the loss's start and end (the wrapped `batch_loss`), the optimizer
    step's start and end (torch's global optimizer hooks); the profiler runs over the steps from `profile_from`."""

    def __init__(self, profile_from: int):
        self.profile_from, self.marks, self.phases, self.profiler = profile_from, [], {}, None
        register_optimizer_step_pre_hook(lambda *_: self.marks[-1].append(time.perf_counter()))
        register_optimizer_step_post_hook(lambda *_: self.marks[-1].append(time.perf_counter()))

    def fit(self, phase: str, modules: list, batch_loss, *args) -> None:
        """pipeline.generator.train's `_fit`, with `batch_loss` timed and the last steps under the profiler."""

        def timed_loss() -> torch.Tensor:
            start = time.perf_counter()  # the step before ends here, without the profiler's start
            if len(self.marks) == self.profile_from:
                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profiler.__enter__()
            loss = batch_loss()
            self.marks.append([start, time.perf_counter()])
            return loss

        self.marks = []
        self.fit_unpatched(phase, modules, timed_loss, *args)
        end = time.perf_counter()
        self.profiler.__exit__(None, None, None)
        steps = len(self.marks) - self.profile_from
        self.phases[phase] = {"marks": self.marks, "end": end,
                              "operators": operator_rows(self.profiler, steps, OPERATORS)}  # fmt: skip

    fit_unpatched = staticmethod(training._fit)


def step_parts(marks: list[list[float]], end: float, warmup: int, steps: int) -> dict[str, float]:
    """Median seconds of each part over steps warmup .. warmup + steps - 1 (a step ends where the next begins)."""
    starts = [m[0] for m in marks[1:]] + [end]
    rows = [(m[1] - m[0], m[2] - m[1], m[3] - m[2], nxt - m[3]) for m, nxt in zip(marks, starts)]
    chosen = rows[warmup : warmup + steps]
    parts = {part: statistics.median(row[i] for row in chosen) for i, part in enumerate(PARTS)}
    return {"step": statistics.median(sum(row) for row in chosen), **parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per phase")
    parser.add_argument("--warmup", type=int, default=4, help="untimed first steps per phase")
    parser.add_argument("--op-steps", type=int, default=4, help="steps per phase under torch's profiler")
    parser.add_argument("--images", type=int, default=64, help="corpus images")
    args = parser.parse_args()
    params = yaml.safe_load(Path("params.yaml").read_text())
    cfg, seed = params["generator"], params["generator"]["seed"]
    stage_size = load_size(cfg)
    per_phase = args.warmup + args.steps + args.op_steps
    size = replace(stage_size, images=args.images, vae_steps=per_phase, unet_steps=per_phase, depth_steps=per_phase)
    conditions, words = load_conditions(cfg), load_words(params["prompts"])
    corpus = build_corpus(seed, size.images, size.height, size.width, conditions, words)
    components = build_components(size.architecture(), seed)
    clock = StepClock(profile_from=args.warmup + args.steps)
    training._fit = clock.fit
    _, depth_unet = training.train(components, corpus, size, seed)
    with tempfile.TemporaryDirectory() as work:
        save(components, depth_unet, Path(work) / "text", Path(work) / "depth")
        start = time.perf_counter()
        write_samples(Path(work) / "text", Path(work) / "depth", corpus, load_samples(cfg), seed, Path(work) / "s")
        samples_s = time.perf_counter() - start
    phases = {}
    for phase, recorded in clock.phases.items():
        parts = step_parts(recorded["marks"], recorded["end"], args.warmup, args.steps)
        stage_steps = getattr(stage_size, STAGE_STEPS[phase])
        phases[phase] = {"seconds": parts, "share": {p: parts[p] / parts["step"] for p in PARTS},
                         "stage_steps": stage_steps, "stage_seconds": parts["step"] * stage_steps,
                         "operators": recorded["operators"]}  # fmt: skip
    print(f"generator at {size.height}x{size.width}, batch {size.batch}: median seconds per step over {args.steps}")
    print(f"{'phase':<8}{'step s':>8}" + "".join(f"{p:>20}" for p in PARTS) + f"{'stage steps':>13}{'x step s':>10}")
    for phase, row in phases.items():
        cells = "".join(f"{row['seconds'][p]:>13.3f} ({row['share'][p]:>3.0%})" for p in PARTS)
        print(f"{phase:<8}{row['seconds']['step']:>8.3f}{cells}{row['stage_steps']:>13}{row['stage_seconds']:>10.0f}")
    print(f"sample sheets ({load_samples(cfg)} images per condition, {len(conditions)} conditions): {samples_s:.1f} s")
    for phase, row in phases.items():
        print(f"\n{phase}")
        print_operators(row["operators"])
    report = {"size": {"height": size.height, "width": size.width, "batch": size.batch}, "corpus_images": args.images,
              "steps": args.steps, "warmup": args.warmup, "op_steps": args.op_steps, "phases": phases,
              "samples_seconds": samples_s, "command": "python bench/profile_generator.py", "commit": commit(),
              "machine": device(cuda=False), "load_average": os.getloadavg()[0]}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
