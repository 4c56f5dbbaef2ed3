"""Work in progress, kept outside DVC's outputs so that a killed run resumes: .dgsynth/wip/synthesize-<fingerprint>/.

DVC deletes a stage's outputs before it runs it (unless they are `persist`, which turns its run-cache off), so
images made before a kill are kept here instead. The fingerprint hashes everything that determines the pixels: the
prompt table and source manifests (bytes), the settings that change an image, the model's identity, this package's
code (and `pipeline/packed.py`, which writes the shards' archives) and the versions of torch, diffusers and transformers. A run reuses only its own fingerprint's folder and removes
the others; the finished folder is renamed into data/synthetic (and reports/synthesize) and its WIP folder removed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import shutil
from pathlib import Path

from pipeline.synthesis.model import Weights
from pipeline.synthesis.settings import Settings

PREFIX = "synthesize-"
CODE = Path(__file__).parent
LIBRARIES = ("torch", "diffusers", "transformers")


def fingerprint(inputs: list[Path], settings: Settings, weights: Weights) -> str:
    """16 hex digits of the sha256 of everything that determines the generated images."""
    digest = hashlib.sha256()
    for path in [*inputs, *sorted(CODE.glob("*.py")), CODE.parent / "packed.py"]:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    described = {"settings": settings.pixel_settings(), "model": weights.identity(),
                 "versions": {name: metadata.version(name) for name in LIBRARIES}}  # fmt: skip
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def work_dir(root: Path, key: str) -> Path:
    return root / f"{PREFIX}{key}"


def remove_others(root: Path, keep: Path) -> list[Path]:
    """Remove the WIP folders of other fingerprints (they can never be resumed); return them."""
    stale = [d for d in sorted(root.glob(f"{PREFIX}*")) if d != keep]
    for folder in stale:
        shutil.rmtree(folder)
    return stale
