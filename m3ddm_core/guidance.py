"""Guidance branches: which global context each batch item of a UNet call gets, and how outputs combine.

Official 4-branch order: [uncond-context/uncond-global, cond-context/uncond-global,
uncond-context/cond-global, cond-context/cond-global]; 2 branches: [uncond-global, cond-global].
"""
from __future__ import annotations

import torch

BRANCH_GLOBALS = {1: ("cond",), 2: ("uncond", "cond"), 4: ("uncond", "uncond", "cond", "cond")}


def branch_context(cond: torch.Tensor, uncond: torch.Tensor, branches: int) -> torch.Tensor:
    """Stack per-branch context tokens. ``cond``/``uncond``: ``[1, T, C]`` -> ``[branches, T, C]``."""
    if branches not in BRANCH_GLOBALS:
        raise ValueError(f"branches must be 1, 2 or 4, got {branches}")
    pick = {"cond": cond, "uncond": uncond}
    return torch.cat([pick[name] for name in BRANCH_GLOBALS[branches]], dim=0)


def combine(e00: torch.Tensor, e10: torch.Tensor, e11: torch.Tensor, s1: float, s2: float) -> torch.Tensor:
    """``e = e00 + s1 (e10 - e00) + s2 (e11 - e10)``; e{context}{global}, 1 = conditional."""
    return e00 + s1 * (e10 - e00) + s2 * (e11 - e10)
