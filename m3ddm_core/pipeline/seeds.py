"""Every seed of a run, derived from the user's one seed by one rule.

A run draws several independent random streams: each shot's seed (from the user's), each pass's noise (from its
shot's), and a re-render's seed (from its pass's). Each is ``seed + step * n`` modulo 2^63, with a distinct prime
``step`` per stream so that no two streams meet for the small ``n`` a video has. The first shot keeps the user's seed,
so a one-shot video samples as a single clip would. The values are part of every recorded output: never change
them.
"""
from __future__ import annotations

SHOT = 1_000_003  # shot n of a video, from the user's seed
NOISE = 7_919  # the sampling noise of pass n of a shot, from the shot's seed
RERENDER = 104_729  # attempt n at re-sampling a pass, from the pass's seed
_MODULUS = 2 ** 63


def derive_seed(seed: int, step: int, n: int) -> int:
    """The seed of item ``n`` of the stream ``step`` (:data:`SHOT`, :data:`NOISE`, :data:`RERENDER`) below
    ``seed``; ``n`` 0 gives ``seed`` itself (reduced to 0 .. 2^63-1, as every consumer reduces it)."""
    return (int(seed) + int(step) * int(n)) % _MODULUS
