"""DRSF's MDSF (arXiv 2503.13617): adversarial alignment of the source and the pseudo-domains on features
interpolated between domains, with soft domain labels. Used on feature maps (a per-location image-level
discriminator) and on RoI features (an instance-level one); the released DRSF code has neither, so this is our
reading of the paper's abstract ("multi-pseudo-domain soft fusion"):

- elements (images, or RoIs) carry a domain index: 0 the real source, 1..K the synthetic pseudo-domains; the
  pseudo-domains are what the generator renders, not the prompt's words: `domain_classes` groups condition words
  that one generator cannot tell apart by a given mapping (word -> group; a word not in it is its own group);
- every element a is paired with a partner b drawn uniformly among the synthetic elements of another domain than
  a's: a source element with any synthetic one, a synthetic element with one of *another pseudo-domain* (elements
  with no such partner are not mixed); lambda ~ Beta(alpha, alpha) per pair from torch's global RNG;
  f_mix = lambda f_a + (1 - lambda) f_b, soft label lambda onehot(d_a) + (1 - lambda) onehot(d_b);
- a discriminator classifies the domain of every element and every mix (per location for maps); the loss is the
  soft-label cross entropy averaged over all of them (and all locations);
- gradient reversal (constant `scale`, no DANN ramp) sits between the features and the discriminator: the
  discriminator minimises the loss, the feature extractor maximises it. The mixes are built from the reversed features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -scale."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.scale * grad, None


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    return GradientReversal.apply(x, scale)


class DomainDiscriminator(nn.Module):
    """Per-location domain classifier of feature maps: 1x1 conv, ReLU, 1x1 conv to num_domains logits."""

    def __init__(self, channels: int, num_domains: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, num_domains, 1))  # fmt: skip

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


class InstanceDiscriminator(nn.Module):
    """Domain classifier of RoI features (N, C, h, w) or (N, C): average-pooled, then FC, ReLU, dropout, FC, ReLU,
    dropout, FC to num_domains logits (DRSF's released instance-level head, at a width of our choosing)."""

    def __init__(self, channels: int, num_domains: int, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_domains))  # fmt: skip

    def forward(self, features: Tensor) -> Tensor:
        pooled = features.flatten(2).mean(-1) if features.dim() > 2 else features
        return self.net(pooled)


def soft_domain_labels(lam: Tensor, first: Tensor, second: Tensor, num_domains: int) -> Tensor:
    """(B,) lambdas and two (B,) domain indices -> (B, num_domains): lam onehot(first) + (1 - lam) onehot(second)."""
    lam = lam[:, None]
    return lam * F.one_hot(first, num_domains).to(lam.dtype) + (1 - lam) * F.one_hot(second, num_domains).to(lam.dtype)


def domain_classes(names: list[str], groups: dict[str, str]) -> tuple[list[str], Tensor]:
    """The domain classes of the domain `names` (the source first, then the condition words): the source, then the
    sorted groups of the words (`groups[word]`, or the word itself); and per name, the index of its class."""
    group_of = [names[0], *(groups.get(name, name) for name in names[1:])]
    classes = [names[0], *sorted(set(group_of[1:]))]
    return classes, torch.tensor([classes.index(group) for group in group_of])


def mixing_pairs(domains: Tensor) -> tuple[Tensor, Tensor]:
    """Index pairs (a, b) to interpolate: each element a that has a synthetic element of another domain gets one such
    partner b, drawn uniformly (torch's global RNG)."""
    allowed = (domains[None, :] > 0) & (domains[None, :] != domains[:, None])
    rows = allowed.any(1).nonzero()[:, 0]
    if not len(rows):
        return rows, rows
    return rows, torch.multinomial(allowed[rows].float(), 1)[:, 0]


def interpolate(features: Tensor, domains: Tensor, num_domains: int, alpha: float) -> tuple[Tensor, Tensor]:
    """The mixes of `mixing_pairs` (first dimension = elements) and their soft domain labels."""
    a, b = mixing_pairs(domains)
    concentration = torch.tensor(float(alpha))
    lam = torch.distributions.Beta(concentration, concentration).sample((len(a),)).to(features.device, features.dtype)
    shape = (-1,) + (1,) * (features.dim() - 1)
    mixed = lam.view(shape) * features[a] + (1 - lam).view(shape) * features[b]
    return mixed, soft_domain_labels(lam, domains[a], domains[b], num_domains)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over elements (and locations) of -sum_k target_k log softmax(logits)_k; targets (N, K), logits (N, K, ...)."""
    targets = targets.view(*targets.shape, *(1,) * (logits.dim() - 2))
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def mdsf_loss(discriminator: nn.Module, features: Tensor, domains: Tensor, num_domains: int, alpha: float,
              scale: float) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(soft-label discriminator loss over the elements and their mixes, the discriminator's accuracy in % on the
    unmixed elements), with gradient reversal of `scale` between `features` and the discriminator."""
    if not ((domains >= 0) & (domains < num_domains)).all():
        raise ValueError(f"domain indices outside 0..{num_domains - 1}: {domains.tolist()}")
    reversed_ = grad_reverse(features, scale)
    mixed, soft = interpolate(reversed_, domains, num_domains, alpha)
    hard = F.one_hot(domains, num_domains).to(features.dtype)
    logits = discriminator(torch.cat([reversed_, mixed]))
    loss = soft_cross_entropy(logits, torch.cat([hard, soft]))
    predicted = logits[: len(domains)].argmax(1)
    acc = 100 * (predicted == domains.view(-1, *(1,) * (predicted.dim() - 1))).float().mean().detach()
    return loss, acc
