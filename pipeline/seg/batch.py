"""The contract between the training data and the methods: how a batch carries real source and synthetic images.

A paired training batch holds B source images followed by B synthetic images (`pipeline.seg.data` builds it).
Every `SegDataSample` carries in its metainfo:
- `domain`: "source" or "synthetic";
- `labeled`: whether `gt_sem_seg` is a real label (source, img2img, depth2img) or all ignore (txt2img);
- `pseudo_domain`: 0 for the real source, 1..K for the synthetic conditions (their sorted names, see
  `pseudo_domain_names`), the domain labels of DRSF's discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from mmseg.structures import SegDataSample
from torch import Tensor

SOURCE, SYNTHETIC = "source", "synthetic"
IGNORE = 255


@dataclass
class DomainBatch:
    """A paired batch split by domain; `*_samples` are the matching SegDataSamples."""

    source: Tensor
    source_samples: list[SegDataSample]
    synthetic: Tensor
    synthetic_samples: list[SegDataSample]


def split_batch(inputs: Tensor, data_samples: list[SegDataSample]) -> DomainBatch:
    """Split a batch into its source and synthetic halves, by each sample's `domain`."""
    domains = [sample.metainfo.get("domain") for sample in data_samples]
    unknown = sorted({d for d in domains if d not in (SOURCE, SYNTHETIC)}, key=str)
    if unknown:
        raise ValueError(f"data samples with domain {unknown[0]!r}; expected {SOURCE!r} or {SYNTHETIC!r}")
    source = [i for i, d in enumerate(domains) if d == SOURCE]
    synthetic = [i for i, d in enumerate(domains) if d == SYNTHETIC]
    return DomainBatch(inputs[source], [data_samples[i] for i in source],
                       inputs[synthetic], [data_samples[i] for i in synthetic])  # fmt: skip


def labels(samples: list[SegDataSample]) -> Tensor:
    """The samples' ground truth as an N x H x W long tensor (255 = ignore)."""
    return torch.stack([sample.gt_sem_seg.data[0] for sample in samples]).long()


def pseudo_domains(samples: list[SegDataSample]) -> Tensor:
    """The samples' domain indices (0 = real source, 1..K = synthetic conditions) as a long tensor."""
    return torch.tensor([int(sample.metainfo["pseudo_domain"]) for sample in samples], dtype=torch.long)


def pseudo_domain_names(conditions: list[str]) -> list[str]:
    """The names behind the domain indices: "source", then the synthetic conditions in sorted order."""
    return [SOURCE, *sorted(set(conditions))]
