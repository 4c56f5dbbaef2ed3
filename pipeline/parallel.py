"""An ordered map over worker processes, with a progress bar: the same results in the same order for any `workers`.

The data stage renders world images and converts real data sets with it (`dgsynth data <domain> --workers N`). An
error in a worker (an `InputError` included) is raised in the caller and the jobs not started yet are cancelled, so a
bad file stops a long conversion without the rest of it being done first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm import tqdm

Job, Result = TypeVar("Job"), TypeVar("Result")


def ordered_map(fn: Callable[[Job], Result], jobs: Sequence[Job], workers: int = 1, chunksize: int = 8,
                **bar) -> list[Result]:  # fmt: skip
    """`[fn(job) for job in jobs]`, in `workers` processes when more than one (`fn` and the jobs must pickle).

    `bar` goes to tqdm (desc, unit, disable, ...).
    """
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in tqdm(jobs, **bar)]
    chunksize = max(1, min(chunksize, len(jobs) // (2 * workers)))  # a few chunks per worker on short lists
    pool = ProcessPoolExecutor(min(workers, len(jobs)))
    try:
        return list(tqdm(pool.map(fn, jobs, chunksize=chunksize), total=len(jobs), **bar))
    finally:
        pool.shutdown(cancel_futures=True)
