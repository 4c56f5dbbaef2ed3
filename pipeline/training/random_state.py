"""The random number generators' states in MMEngine's checkpoints, so that a resumed run draws what the uninterrupted
run drew.

MMEngine's checkpoints hold the weights, the optimizer and the schedulers, but not the RNG states, and a resumed run
re-seeds: dropout, the detectors' sample draws, MDSF's mixing, ClassMix and the other random choices of training
would then repeat the first iterations' draws. `RandomStateHook` gathers every process's states (Python, numpy, torch
CPU and CUDA) at each checkpoint iteration, rank 0 writes them into the checkpoint, and on resume each process sets
its own back at the point the uninterrupted run stood: after MMEngine's loop has skipped (reloaded) the batches already
trained on, just before it fetches the next. The data loader needs nothing: the sampler's order comes from its own
seeded generator, and loader processes are seeded per worker and replay the skipped batches.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def get_state() -> dict:
    """This process's RNG states."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


class RestoredBeforeBatch:
    """Iterates over `batches`; before fetching batch number `index` (from 0), sets the RNG state `state`."""

    def __init__(self, batches, index: int, state: dict):
        self.batches, self.left, self.state = batches, index, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.left == 0:
            set_state(self.state)
        self.left -= 1
        return next(self.batches)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves every process's RNG states with the checkpoints written every `interval` iterations and at the end, and
    restores them on resume (see the module)."""

    priority = "LOW"  # after the iteration's other hooks, before the checkpoint hook (VERY_LOW)

    def __init__(self, interval: int):
        self.interval, self.states = interval, None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.states = all_gather_object(get_state())  # every rank takes part; rank 0 alone saves

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint["random_states"] = self.states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get("random_states")
        if states is None or len(states) != runner.world_size:
            return  # another number of processes: their draws differ anyway
        loop = runner.train_loop
        loop.dataloader_iterator = RestoredBeforeBatch(loop.dataloader_iterator, checkpoint["meta"]["iter"],
                                                       states[runner.rank])  # fmt: skip
