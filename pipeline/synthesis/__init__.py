"""Stable Diffusion over the prompt table: pseudo-domain images in resumable shards, with the source labels reused.

    settings.py    the `synthesize` section of params.yaml, checked
    model.py       finding the weights (local folder or hub id) and loading the pipeline of a mode
    generation.py  one batch of images, one seeded CPU generator per image
    depth.py       manifest depth as the inverse depth SD 2 depth expects
    images.py      resizing between source and model sizes, PNG writing
    shards.py      the output layout and manifests
    wip.py         the work-in-progress folder and its fingerprint (resume)
    ranks.py       several processes (torchrun): which shards a rank makes
    report.py      contact sheets per condition
    run.py         the stage from start to end
"""

from pipeline.synthesis.generation import generate
from pipeline.synthesis.model import find_weights, load_pipeline
from pipeline.synthesis.run import synthesize
from pipeline.synthesis.settings import Settings, check

__all__ = ["Settings", "check", "find_weights", "generate", "load_pipeline", "synthesize"]
