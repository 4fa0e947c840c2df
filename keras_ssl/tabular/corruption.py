"""In-graph corruption of preprocessed table rows: SCARF's feature resampling and VIME's column swaps.

Both act on the preprocessed dict ``{"numeric": float32 [B, Mn], "missing": float32 [B, Mn],
"categorical": int32 [B, Mc]}`` of :class:`~keras_ssl.tabular.TabularPreprocessing`. A *feature* is one
column: feature ``j < Mn`` is numeric column ``j`` (its value and its missing flag move together),
feature ``Mn + k`` is categorical column ``k``; ``M = Mn + Mc``.

Randomness is counter-based (:mod:`keras_ssl.counter_random`): every draw is a pure function of
``(seed, step, global row index, feature)``. Replacement values come from a ``pool``: the global
batch (every replica's rows, in replica order). A replica passes its own rows with their global
indices ``row_ids`` and the gathered pool, so one replica and N replicas draw exactly the same
corruption. Called on a whole batch alone, ``pool`` and ``row_ids`` default to the batch itself.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from keras_ssl import counter_random as cr
from keras_ssl.backend import tf

Features = Dict[str, tf.Tensor]
KEYS = ("numeric", "missing", "categorical")

# Random streams, one per decision, so the draws are independent.
_SCARF_SELECT, _SCARF_DONOR, _VIME_MASK, _VIME_PERMUTE = 11, 12, 13, 14


def check_features(features) -> Features:
    """Validate a preprocessed dict; returns it with float32 numerics and int32 categoricals."""
    if not isinstance(features, dict) or set(features) != set(KEYS):
        got = sorted(features) if isinstance(features, dict) else type(features).__name__
        raise TypeError(
            f"Tabular corruption takes the preprocessed dict with keys {list(KEYS)} (the output of "
            f"TabularPreprocessing), got {got}. Run the raw columns through encoder.preprocessing first."
        )
    out = {
        "numeric": tf.cast(features["numeric"], tf.float32),
        "missing": tf.cast(features["missing"], tf.float32),
        "categorical": tf.cast(features["categorical"], tf.int32),
    }
    for key, value in out.items():
        if value.shape.rank != 2:
            raise ValueError(f"features[{key!r}] must be [batch, columns], got shape {value.shape}.")
    if num_features(out) < 2:
        raise ValueError(
            f"Corruption needs at least 2 feature columns (numeric + categorical); this table has "
            f"{num_features(out)}. SCARF and VIME corrupt some columns and keep the others: add columns."
        )
    return out


def num_features(features: Features) -> int:
    """``M``: numeric plus categorical columns (static)."""
    numeric, categorical = features["numeric"].shape[-1], features["categorical"].shape[-1]
    if numeric is None or categorical is None:
        raise ValueError("The number of feature columns must be static (known when the graph is built).")
    return int(numeric) + int(categorical)


def _rows_and_pool(features: Features, row_ids, pool) -> Tuple[tf.Tensor, Features, tf.Tensor]:
    batch = tf.shape(features["numeric"])[0]
    if pool is None:
        pool = features
    else:  # the global batch; all_gather may lose the static column counts, the features have them
        if not isinstance(pool, dict) or set(pool) != set(KEYS):
            raise TypeError(f"pool must be a preprocessed dict with keys {list(KEYS)}, like the features.")
        pool = {k: tf.reshape(tf.stop_gradient(tf.cast(pool[k], v.dtype)), [-1, v.shape[-1]])
                for k, v in features.items()}
    if row_ids is None:
        row_ids = tf.range(batch)
    pool_size = tf.shape(pool["numeric"])[0]
    return tf.cast(row_ids, tf.int32), pool, pool_size


def _replace_from_donors(features: Features, pool: Features, donors: tf.Tensor, mask: tf.Tensor) -> Features:
    """``features`` with each masked cell taken from its donor row of ``pool``.

    ``donors`` and ``mask`` are ``[B, M]`` (``int32`` pool rows, ``bool``): feature ``j`` of row ``i``
    becomes ``pool[donors[i, j], j]`` where ``mask[i, j]``; a numeric feature's value and missing flag
    move together.
    """
    mn = int(features["numeric"].shape[-1])
    numeric_rows, categorical_rows = donors[:, :mn], donors[:, mn:]
    columns_n = tf.broadcast_to(tf.range(mn)[None, :], tf.shape(numeric_rows))
    columns_c = tf.broadcast_to(tf.range(tf.shape(categorical_rows)[1])[None, :], tf.shape(categorical_rows))
    at_n = tf.stack([numeric_rows, columns_n], axis=-1)
    at_c = tf.stack([categorical_rows, columns_c], axis=-1)
    numeric_mask, categorical_mask = mask[:, :mn], mask[:, mn:]
    return {
        "numeric": tf.where(numeric_mask, tf.gather_nd(pool["numeric"], at_n), features["numeric"]),
        "missing": tf.where(numeric_mask, tf.gather_nd(pool["missing"], at_n), features["missing"]),
        "categorical": tf.where(categorical_mask, tf.gather_nd(pool["categorical"], at_c),
                                features["categorical"]),
    }


def scarf_corruption(
    features: Features,
    rate: float = 0.6,
    seed: int = 0,
    step=0,
    row_ids: Optional[tf.Tensor] = None,
    pool: Optional[Features] = None,
) -> Tuple[Features, tf.Tensor]:
    """SCARF's corruption (Bahri et al., 2022): in every row replace exactly ``floor(rate * M)``
    features, chosen uniformly at random, each with the same feature of another random row of the
    ``pool`` (the empirical marginal of the batch; a row never donates to itself).

    Args:
        features: preprocessed dict, this replica's rows ``[B, ...]``.
        rate: corruption rate ``c`` in ``(0, 1]`` (paper: 0.6).
        seed, step: the random key; a fresh ``step`` gives fresh draws.
        row_ids: ``int [B]`` global index of each row in ``pool`` (default ``0..B-1``).
        pool: the global batch ``[N, ...]`` the replacements come from (default ``features``); N >= 2.

    Returns:
        ``(corrupted, mask)``: the corrupted dict (same shapes and dtypes) and ``bool [B, M]``, the
        features that were replaced.
    """
    features = check_features(features)
    m = num_features(features)
    rate = float(rate)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"corruption_rate must be in (0, 1], got {rate}.")
    count = int(rate * m)
    if count < 1:
        raise ValueError(
            f"corruption_rate={rate} corrupts floor({rate} * {m}) = 0 of the {m} feature columns, so both "
            f"views would be identical. Use corruption_rate >= {1.0 / m:.3g}."
        )
    row_ids, pool, pool_size = _rows_and_pool(features, row_ids, pool)
    keys = cr.to_u32(row_ids)[:, None]
    index = tf.range(m)[None, :]
    # Exactly ``count`` features per row: those whose uniform ranks among the ``count`` smallest.
    order = tf.argsort(cr.uniform(seed, _SCARF_SELECT, step, keys, index), axis=1, stable=True)
    ranks = tf.argsort(order, axis=1, stable=True)
    mask = ranks < count
    # Donor: uniform over the other pool rows, ``row + 1 + floor(u * (N - 1)) mod N``.
    others = tf.cast(pool_size - 1, tf.float32)
    offset = tf.cast(tf.floor(cr.uniform(seed, _SCARF_DONOR, step, keys, index) * others), tf.int32)
    offset = tf.minimum(offset, pool_size - 2)
    donors = tf.math.floormod(row_ids[:, None] + 1 + offset, pool_size)
    corrupted = _replace_from_donors(features, pool, donors, mask)
    return corrupted, mask


def vime_corruption(
    features: Features,
    p_m: float = 0.3,
    seed: int = 0,
    step=0,
    row_ids: Optional[tf.Tensor] = None,
    pool: Optional[Features] = None,
) -> Tuple[Features, tf.Tensor, tf.Tensor]:
    """VIME's corruption (Yoon et al., 2020): a Bernoulli(``p_m``) mask per cell; masked cells take the
    value of an independently shuffled copy of their column (each column its own random permutation
    of the ``pool`` rows).

    Args and defaults as :func:`scarf_corruption`, with ``p_m`` in ``(0, 1)`` (paper: 0.3).

    Returns:
        ``(corrupted, mask, changed)``: the corrupted dict, the mask ``bool [B, M]`` and the
        mask-estimation target ``float32 [B, M]``, 1 where the value actually changed (``x != x~``;
        for a numeric feature its value or its missing flag). A masked cell whose swapped-in value
        equals the original (itself, or a repeated value) is not a change.
    """
    features = check_features(features)
    m = num_features(features)
    p_m = float(p_m)
    if not 0.0 < p_m < 1.0:
        raise ValueError(f"p_m must be in (0, 1), got {p_m}.")
    row_ids, pool, pool_size = _rows_and_pool(features, row_ids, pool)
    index = tf.range(m)[None, :]
    mask = cr.uniform(seed, _VIME_MASK, step, cr.to_u32(row_ids)[:, None], index) < p_m
    # Column j's permutation: the argsort of a uniform per (pool row, j); row g takes permutation[g].
    all_rows = cr.to_u32(tf.range(pool_size))[:, None]
    permutations = tf.argsort(cr.uniform(seed, _VIME_PERMUTE, step, all_rows, index), axis=0, stable=True)
    donors = tf.gather(permutations, row_ids)  # [B, M]
    corrupted = _replace_from_donors(features, pool, donors, mask)
    changed_numeric = tf.not_equal(corrupted["numeric"], features["numeric"]) | tf.not_equal(
        corrupted["missing"], features["missing"])
    changed_categorical = tf.not_equal(corrupted["categorical"], features["categorical"])
    changed = tf.cast(tf.concat([changed_numeric, changed_categorical], axis=1), tf.float32)
    return corrupted, mask, changed


def global_row_ids(local_batch: tf.Tensor) -> tf.Tensor:
    """``int32 [B]``: this replica's rows' indices in the global batch (replica order, exact for unequal
    replica batches). ``0..B-1`` outside a strategy or with one replica."""
    from keras_ssl.training.replicas import replica_gather

    ctx = tf.distribute.get_replica_context()
    local_batch = tf.cast(local_batch, tf.int32)
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.range(local_batch)
    sizes = replica_gather(local_batch[None])  # [replicas]
    replica = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    offset = tf.reduce_sum(tf.where(tf.range(ctx.num_replicas_in_sync) < replica, sizes, 0))
    return offset + tf.range(local_batch)


__all__ = ["global_row_ids", "num_features", "scarf_corruption", "vime_corruption"]
