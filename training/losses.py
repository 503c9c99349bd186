"""Contrastive losses for bi-encoder fine-tuning: InfoNCE (CLIP) and sigmoid (SigLIP).

Both take two batches of L2-normalised embeddings ``a`` and ``b`` (row ``i`` of each is
a positive pair: an image and its title, or two listings of one product group), the
group id of each row, and optionally extra candidates for the ``b`` side (mined hard
negatives) appended as extra columns of the logits. Items of one group are never
treated as negatives of each other: InfoNCE masks them out of the softmax, SigLIP
labels them positive. The temperature (and SigLIP's bias) are learnable parameters of
the loss module, so the optimiser must see ``loss.parameters()`` too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0


def same_group(groups_a: torch.Tensor, groups_b: torch.Tensor) -> torch.Tensor:
    """Boolean (len(a), len(b)) mask: True where the two items share a group id."""
    return groups_a.view(-1, 1) == groups_b.view(1, -1)


def _columns(
    b: torch.Tensor,
    groups: torch.Tensor,
    extra: torch.Tensor | None,
    extra_groups: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate rows (``b`` then the extra ones) and their group ids."""
    if extra is None or extra.shape[0] == 0:
        return b, groups
    if extra_groups is None:  # unlabelled extras: a group no row has
        offsets = torch.arange(1, extra.shape[0] + 1, device=groups.device, dtype=groups.dtype)
        extra_groups = groups.min() - offsets
    return torch.cat([b, extra.to(b.dtype)]), torch.cat([groups, extra_groups])


class _PairLoss(nn.Module):
    """What both losses share: the learnable scale (``exp(logit_scale)``, clamped at 100
    as open_clip does) and the columns a batch is scored against (``b``, then the
    extra candidates); ``pair_loss`` is each loss's own formula."""

    logit_scale: nn.Parameter

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped at 100."""
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        groups: torch.Tensor,
        extra: torch.Tensor | None = None,
        extra_groups: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of rows ``a`` against ``b`` and the extra candidates."""
        cols, col_groups = _columns(b, groups, extra, extra_groups)
        return self.pair_loss(a, cols, groups, col_groups)

    def pair_loss(
        self, a: torch.Tensor, cols: torch.Tensor, groups: torch.Tensor, col_groups: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


class InfoNCELoss(_PairLoss):
    """Symmetric InfoNCE (CLIP's loss) with a learnable temperature.

    ``logit_scale`` holds log(1 / temperature), initialised to log(1 / 0.07), and its
    exponential is clamped at 100. a -> b rows see the extra columns; b -> a rows see
    the batch only. Same-group entries off the diagonal are masked out of both."""

    def __init__(self, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def pair_loss(self, a, cols, groups, col_groups):
        """Mean of the a -> b and b -> a cross-entropies."""
        n = a.shape[0]
        logits = self.scale() * a.float() @ cols.float().T  # (n, n + m)
        diag = torch.eye(n, cols.shape[0], dtype=torch.bool, device=a.device)
        masked = same_group(groups, col_groups) & ~diag
        logits = logits.masked_fill(masked, float("-inf"))
        target = torch.arange(n, device=a.device)
        back = logits[:, :n].T  # b -> a over the batch, same mask (it is symmetric)
        return (F.cross_entropy(logits, target) + F.cross_entropy(back, target)) / 2


class SigLIPLoss(_PairLoss):
    """SigLIP's pairwise sigmoid loss with learnable temperature and bias.

    logits = a @ b.T * exp(t) + bias, t initialised to log(10) and bias to -10 (the
    SigLIP paper); label +1 for pairs of one group (the diagonal included), -1 for the
    rest; loss = -sum(log sigmoid(label * logit)) / n."""

    def __init__(self, init_scale: float = 10.0, init_bias: float = -10.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(init_bias)))

    def pair_loss(self, a, cols, groups, col_groups):
        """Sigmoid loss over every (row, column) pair, divided by the number of rows."""
        n = a.shape[0]
        logits = self.scale() * a.float() @ cols.float().T + self.logit_bias
        positive = same_group(groups, col_groups)
        positive |= torch.eye(n, cols.shape[0], dtype=torch.bool, device=a.device)
        labels = positive.float() * 2 - 1
        return -F.logsigmoid(labels * logits).sum() / n


LOSSES = {"infonce": InfoNCELoss, "siglip": SigLIPLoss}


def build_loss(name: str) -> nn.Module:
    """A fresh loss module by name (``infonce`` or ``siglip``)."""
    from retrieval.errors import unknown_name

    try:
        return LOSSES[name]()
    except KeyError:
        raise unknown_name("loss", name, tuple(LOSSES)) from None
