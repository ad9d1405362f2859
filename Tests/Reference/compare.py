#!/usr/bin/env python3
"""The logit comparison metric shared by the Python self-test and (re-implemented identically in)
Tests/TandemEngineTests/ReferenceComparison.swift.

For each compared position p with reference logits r and engine logits e:

    range_p   = max(r) - min(r)                      (over the whole vocabulary)
    top_p     = the 20 token ids with the largest r
    err_p     = max over i in top_p of |e[i] - r[i]| / range_p
    argmax_ok = argmax(e) == argmax(r)
                or r[argmax(e)] >= max(r) - 2 * tol * range_p   (a near-tie in the reference)

and the model passes when max_p err_p <= tol (default 1e-2) and argmax_ok holds everywhere.
Normalizing by the logit range (not by |r[i]|) keeps the metric meaningful for logits near zero,
and the near-tie rule stops a legitimate rounding difference from flipping a coin-toss argmax.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TOLERANCE = 1e-2
DEFAULT_TOP = 20


@dataclass
class Comparison:
    max_rel_error: float
    worst_position: int
    argmax_mismatches: list[int]   # positions whose argmax differs beyond a near-tie

    @property
    def ok(self) -> bool:
        return self.max_rel_error <= DEFAULT_TOLERANCE and not self.argmax_mismatches


def compare_logits(engine: np.ndarray, reference: np.ndarray, top: int = DEFAULT_TOP,
                   tol: float = DEFAULT_TOLERANCE) -> Comparison:
    engine = np.atleast_2d(np.asarray(engine, dtype=np.float64))
    reference = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    if engine.shape != reference.shape:
        raise ValueError(f"shape mismatch {engine.shape} vs {reference.shape}")
    worst, worst_pos, mismatches = 0.0, 0, []
    for p, (e, r) in enumerate(zip(engine, reference)):
        rng = float(r.max() - r.min()) or 1.0
        idx = np.argsort(-r, kind="stable")[:top]
        err = float(np.abs(e[idx] - r[idx]).max() / rng)
        if err > worst:
            worst, worst_pos = err, p
        ea = int(np.argmax(e))
        if ea != int(np.argmax(r)) and r[ea] < r.max() - 2 * tol * rng:
            mismatches.append(p)
    return Comparison(worst, worst_pos, mismatches)
