"""Tolerances that scale with what is measured, so the suite holds on any x86 CPU, oneDNN on or off.

Two runs of the same computation in a different order (one replica vs two, eager vs a SavedModel,
oneDNN vs Eigen kernels) differ by float32 rounding, which grows with the size of the values and
with the depth of the computation. Bounds here are therefore relative: to the size of a training
step for weights, to the size of the values for outputs. A real bug (a replica's own batch
statistics, a missing all-reduce, a wrong weight) moves them by orders of magnitude more.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# One replica vs two, for one optimizer step. Measured: 6e-8 to 8e-7 for the six methods' tiny test
# heads (AMD EPYC, oneDNN on), up to 1.7e-4 for SimCLR with larger heads on another CPU, and 0.07 to
# 0.59 for a head whose batch norm uses per-replica statistics (a semantic slip).
STEP_RTOL = 1e-3
# The same forward pass in two graphs (eager vs SavedModel, fused vs unfused kernels): relative to
# the largest value compared.
VALUE_RTOL = 1e-4
# A run resumed from a checkpoint against the uninterrupted run: floating state relative to the largest
# value compared. Measured: 0 (bit for bit) almost always; once 4.7e-10 absolute for SwAV with oneDNN
# off (TF_ENABLE_ONEDNN_OPTS=0), on cores shared with other jobs: some Eigen kernels are not bitwise
# reproducible from run to run. A state that is not restored (a counter, a queue, an optimizer slot)
# moves values by the size of a training step, orders of magnitude more.
RESUME_RTOL = 1e-6


def _flat(arrays: Sequence[np.ndarray]) -> list:
    return [np.asarray(a, np.float64) for a in arrays]


def relative_step_difference(before, after_a, after_b) -> float:
    """``max|a - b| / max|a - before|``, both maxima over all weights (``inf`` if nothing moved).

    Per tensor would fail for tensors whose true step is ~0 (a bias before batch norm), so both
    maxima run over all floating weights; integer weights (counters) must be equal (else ``inf``).
    """
    floating = [np.asarray(w).dtype.kind == "f" for w in before]
    if any(not np.array_equal(a, b) for a, b, f in zip(after_a, after_b, floating) if not f):
        return float("inf")  # integer state (step counters) must agree exactly
    before, after_a, after_b = ([w for w, f in zip(ws, floating) if f] for ws in (before, after_a, after_b))
    before, after_a, after_b = _flat(before), _flat(after_a), _flat(after_b)
    diff = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(after_a, after_b))
    step = max(float(np.max(np.abs(a - w), initial=0.0)) for a, w in zip(after_a, before))
    return diff / step if step > 0 else float("inf")


def state_difference(reference, resumed) -> float:
    """``max|a - b| / max|a|`` over the floating arrays of two states (dicts name -> array, or lists in
    the same order); integer arrays (step counters, pointers) must be equal, else ``inf``."""
    if isinstance(reference, dict):
        assert sorted(reference) == sorted(resumed), "the two states hold different variables"
        reference, resumed = ([state[k] for k in sorted(state)] for state in (reference, resumed))
    reference, resumed = [np.asarray(a) for a in reference], [np.asarray(b) for b in resumed]
    assert len(reference) == len(resumed), "the two states hold different numbers of variables"
    floating = [a.dtype.kind in "fc" for a in reference]
    if any(not np.array_equal(a, b) for a, b, f in zip(reference, resumed, floating) if not f):
        return float("inf")
    pairs = [(a, b) for a, b, f in zip(reference, resumed, floating) if f]
    return relative_difference([b for _, b in pairs], [a for a, _ in pairs])


def relative_difference(actual, expected) -> float:
    """``max|actual - expected| / max|expected|`` over arrays (or lists of arrays) of any shape."""
    actual = _flat(actual if isinstance(actual, (list, tuple)) else [actual])
    expected = _flat(expected if isinstance(expected, (list, tuple)) else [expected])
    diff = max(float(np.max(np.abs(a - e), initial=0.0)) for a, e in zip(actual, expected))
    scale = max(float(np.max(np.abs(e), initial=0.0)) for e in expected)
    return diff / scale if scale > 0 else diff


def assert_close_to_scale(actual, expected, rtol: float = VALUE_RTOL, what: str = "") -> None:
    """``max|actual - expected| <= rtol * max|expected|`` (shapes must match)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    error = relative_difference(actual, expected)
    assert error <= rtol, f"{what}: max|difference| / max|expected| = {error:.3g} > {rtol:g}"


def close(a: float, b: float, rtol: float) -> bool:
    """Scalars equal within ``rtol`` of the larger magnitude."""
    return abs(a - b) <= rtol * max(abs(a), abs(b))
