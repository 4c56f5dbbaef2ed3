"""A progress bar for MMEngine training (its logger is kept at WARNING, so a run is otherwise silent for minutes)."""

from __future__ import annotations

from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from tqdm import tqdm


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A tqdm bar over the training iterations with the current loss, on rank 0; starts at the resumed iteration."""

    def before_train(self, runner) -> None:
        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc=Path(runner.work_dir).name,
                        unit="it", disable=runner.rank != 0)  # fmt: skip

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs and "loss" in outputs:
            self.bar.set_postfix(loss=f"{float(outputs['loss'].detach()):.3f}", refresh=False)
        self.bar.update(1)

    def after_train(self, runner) -> None:
        self.bar.close()
