"""Ablation grids: one evaluation per cell (``ablate``) and their comparison (``comparison``)."""
