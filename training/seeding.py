"""One seed for every generator a run draws from, set before any weight is created.

A fresh classification head, LoRA adapters or an ArcFace head are drawn from torch's
generator when the model is built; the HF Trainer seeds only in its own constructor,
after the model exists, so every trainer calls ``seed_everything`` before it loads or
builds a model: two runs at one seed then start from the same weights.
"""

from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's (every device)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # LightGBM-only installs train without torch
        return
    torch.manual_seed(seed)  # seeds CUDA's generators too
