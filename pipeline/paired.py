"""The contract between the training data and the methods of both tasks: how a batch carries real source and
synthetic images, and the paired dataset that builds such batches.

A paired training batch holds B source images followed by B synthetic images. Every data sample (an mmseg
`SegDataSample` or an mmdet `DetDataSample`) carries in its metainfo:
- `domain`: "source" or "synthetic";
- `labeled`: whether its ground truth is real (source, img2img, depth2img) or absent (txt2img);
- `pseudo_domain`: 0 for the real source, 1..K for the synthetic conditions (their sorted names, see
  `pseudo_domain_names`), the domain labels of DRSF's discriminators.
`PairedDataset` indexes every (source, synthetic) pair, so MMEngine's seeded shuffling draws random pairs; with
`by_source` it indexes the synthetic rows instead, each with the source row its `source_id` names, and hands both
pipelines one `shared` dict, so the random transforms that read it (`pipeline.seg.data`) give both one crop and flip.
`paired_collate` puts the B sources of a batch first and their B synthetic partners after them. Both are registered
in MMEngine's root registries, so the mmseg and the mmdet scope find them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, FUNCTIONS
from torch import Tensor
from torch.utils.data import Dataset

from pipeline.manifest import read_manifest

SOURCE, SYNTHETIC = "source", "synthetic"


@dataclass
class DomainBatch:
    """A paired batch split by domain; `*_samples` are the matching data samples."""

    source: Tensor
    source_samples: list
    synthetic: Tensor
    synthetic_samples: list


def split_batch(inputs: Tensor, data_samples: list) -> DomainBatch:
    """Split a batch into its source and synthetic halves, by each sample's `domain`."""
    domains = [sample.metainfo.get("domain") for sample in data_samples]
    unknown = sorted({d for d in domains if d not in (SOURCE, SYNTHETIC)}, key=str)
    if unknown:
        raise ValueError(f"data samples with domain {unknown[0]!r}; expected {SOURCE!r} or {SYNTHETIC!r}")
    source = [i for i, d in enumerate(domains) if d == SOURCE]
    synthetic = [i for i, d in enumerate(domains) if d == SYNTHETIC]
    return DomainBatch(inputs[source], [data_samples[i] for i in source],
                       inputs[synthetic], [data_samples[i] for i in synthetic])  # fmt: skip


def pseudo_domains(samples: list) -> Tensor:
    """The samples' domain indices (0 = real source, 1..K = synthetic conditions) as a long tensor."""
    return torch.tensor([int(sample.metainfo["pseudo_domain"]) for sample in samples], dtype=torch.long)


def pseudo_domain_names(conditions: list[str]) -> list[str]:
    """The names behind the domain indices: "source", then the synthetic conditions in sorted order."""
    return [SOURCE, *sorted(set(conditions))]


def synthetic_conditions(manifest: str) -> list[str]:
    """The conditions of a synthetic manifest's rows: the pseudo-domains."""
    return sorted(set(read_manifest(manifest)["condition"]))


@DATASETS.register_module()
class PairedDataset(Dataset):
    """Every (source, synthetic) pair of two datasets: item i is source i // n and synthetic i % n (n synthetic).
    With `by_source`: item i is synthetic i and the source whose `id` is its `source_id`, through one `shared`
    dict of random draws (the source's pipeline draws, the synthetic one's replays)."""

    def __init__(self, source: dict, synthetic: dict, by_source: bool = False):
        self.source, self.synthetic = DATASETS.build(source), DATASETS.build(synthetic)
        if not len(self.source) or not len(self.synthetic):
            raise ValueError(f"a paired dataset needs both halves: {len(self.source)} source and "
                             f"{len(self.synthetic)} synthetic images")  # fmt: skip
        self.metainfo = self.source.metainfo
        self.partner = self.source_rows() if by_source else None

    def source_rows(self) -> list[int]:
        """Per synthetic row, the index of the source row its `source_id` names."""
        rows = {self.source.get_data_info(i)["id"]: i for i in range(len(self.source))}
        wanted = [self.synthetic.get_data_info(i).get("source_id") for i in range(len(self.synthetic))]
        missing = [w for w in wanted if w not in rows]
        if missing:
            raise ValueError(f"{len(missing)} synthetic images name no source row by source_id, e.g. {missing[0]!r}")
        return [rows[w] for w in wanted]

    def __len__(self) -> int:
        return len(self.synthetic) if self.partner is not None else len(self.source) * len(self.synthetic)

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        if self.partner is None:
            return self.source[index // len(self.synthetic)], self.synthetic[index % len(self.synthetic)]
        shared: dict = {}
        source = self.source.pipeline(dict(self.source.get_data_info(self.partner[index]), shared=shared))
        return source, self.synthetic.pipeline(dict(self.synthetic.get_data_info(index), shared=shared))


@FUNCTIONS.register_module()
def paired_collate(batch: list[tuple[dict, dict]]) -> dict:
    """B (source, synthetic) pairs -> one batch of the B sources followed by the B synthetic images."""
    return pseudo_collate([pair[0] for pair in batch] + [pair[1] for pair in batch])


def paired_dataset(dataset_type: str, settings, methods, source: list[str], synthetic: str | None,
                   conditions: list[str], pipeline: list[dict], by_source: bool = False,
                   **kwargs) -> tuple[dict, str, int]:  # fmt: skip
    """The training set of a run (`dataset_type` over the `source` manifests, paired with the `synthetic` one for the
    paired methods, `by_source` or at random), its collate function and the samples per loader call (pairs, or
    images); `kwargs` go to every `dataset_type` config."""
    dataset = dict(type=dataset_type, manifests=list(source), pipeline=pipeline, **kwargs)
    if settings.method not in methods.paired:
        return dataset, "pseudo_collate", settings.batch
    synthetic_set = dict(type=dataset_type, manifests=[synthetic], domain=SYNTHETIC, conditions=conditions,
                         pipeline=pipeline, **kwargs)  # fmt: skip
    paired = dict(type="PairedDataset", source=dataset, synthetic=synthetic_set, by_source=by_source)
    return paired, "paired_collate", settings.batch // 2
