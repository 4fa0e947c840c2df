"""Losses of the vision SSL methods, as pure functions of global-batch embeddings.

The methods gather embeddings from all replicas (``replica_gather``) before calling these, so every
function here sees the whole global batch and computes the exact global-batch value. Inputs of any
float dtype are cast to float32 and all arithmetic is float32. ``N`` is the global batch size, ``D``
the embedding dimension.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

from keras_ssl.backend import tf

# SimCLR's reference code masks self-similarities with ``logits - 1e9``; large but finite keeps
# gradients NaN-free.
_LARGE_NUM = 1e9


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def _cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Row-wise cosine similarity ``[N, D], [N, D] -> [N]``."""
    return tf.reduce_sum(tf.math.l2_normalize(a, axis=-1) * tf.math.l2_normalize(b, axis=-1), axis=-1)


def _off_diagonal(matrix: tf.Tensor) -> tf.Tensor:
    """``[D, D] -> [D, D]`` with the diagonal zeroed."""
    return matrix - tf.linalg.diag(tf.linalg.diag_part(matrix))


def nt_xent(z1: tf.Tensor, z2: tf.Tensor, temperature: float = 0.1) -> Tuple[tf.Tensor, tf.Tensor]:
    """SimCLR's NT-Xent loss over the ``2N`` views (Chen et al., 2020, eq. 1).

    ``l(i, j) = -log exp(sim(z_i, z_j)/t) / sum_{k != i} exp(sim(z_i, z_k)/t)`` with cosine ``sim``
    (``z`` is L2-normalised inside). Every one of the ``2N`` views is an anchor whose positive is the
    other view of the same image and whose negatives are the other ``2N - 2`` views; the loss is the
    mean over all ``2N`` anchors, so it is symmetric in ``z1, z2``. (SimCLR's TF code reports the sum
    of the two directions' means, i.e. twice this value.) ``temperature`` 0.1 is SimCLR's default for
    large batches (0.5 in the paper's CIFAR-10 runs).

    Args:
        z1, z2: ``[N, D]`` projections of the two views; row ``i`` of both is the same image.
        temperature: softmax temperature ``t``.

    Returns:
        ``(loss, accuracy)`` float32 scalars; ``accuracy`` is the fraction of the ``2N`` anchors whose
        most similar other view is their positive.
    """
    z = tf.math.l2_normalize(tf.concat([_f32(z1), _f32(z2)], axis=0), axis=-1)  # [2N, D]
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature  # [2N, 2N]
    logits -= _LARGE_NUM * tf.eye(2 * n, dtype=tf.float32)
    labels = tf.concat([tf.range(n, 2 * n), tf.range(n)], axis=0)  # positive of i is i +- N
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))


def info_nce(
    query: tf.Tensor, key: tf.Tensor, queue: tf.Tensor, temperature: float = 0.2
) -> Tuple[tf.Tensor, tf.Tensor]:
    """MoCo's InfoNCE loss with a queue of negatives (He et al., 2020, eq. 1; MoCo v2 ``t = 0.2``).

    ``L_q = -log exp(q.k+/t) / (exp(q.k+/t) + sum_{k- in queue} exp(q.k-/t))``. ``query``, ``key``
    and ``queue`` are all L2-normalised inside (a no-op for an already normalised queue). The keys
    come from the momentum encoder: the model stops their gradients, this function does not.

    Args:
        query: ``[N, D]`` online-encoder embeddings.
        key: ``[N, D]`` momentum-encoder embeddings of the other view; row ``i`` is ``query[i]``'s positive.
        queue: ``[K, D]`` negatives (keys of earlier batches).
        temperature: softmax temperature ``t``.

    Returns:
        ``(loss, accuracy)`` float32 scalars: the mean over queries, and the fraction of queries whose
        positive logit is the largest of the ``1 + K``.
    """
    q = tf.math.l2_normalize(_f32(query), axis=-1)
    k = tf.math.l2_normalize(_f32(key), axis=-1)
    negatives = tf.math.l2_normalize(_f32(queue), axis=-1)
    positive = tf.reduce_sum(q * k, axis=-1, keepdims=True)  # [N, 1]
    negative = tf.matmul(q, negatives, transpose_b=True)  # [N, K]
    logits = tf.concat([positive, negative], axis=1) / temperature
    labels = tf.zeros(tf.shape(q)[:1], tf.int32)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), 0)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))


def byol_loss(p: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """BYOL's regression loss (Grill et al., 2020, eq. 2): mean over the batch of
    ``||p/||p|| - z/||z|| ||^2 = 2 - 2 cos(p, z)``.

    ``p`` ``[N, D]`` are online predictions, ``z`` ``[N, D]`` target projections. No stop-gradient
    here: the model stops the target's gradients. Symmetrise by adding the swapped-views term.
    Returns a float32 scalar in ``[0, 4]``.
    """
    return tf.reduce_mean(2.0 - 2.0 * _cosine(_f32(p), _f32(z)))


def simsiam_loss(p: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
    """SimSiam's negative cosine similarity (Chen & He, 2021, eq. 1): mean over the batch of
    ``D(p, z) = -p/||p|| . z/||z||``.

    ``p`` ``[N, D]`` are predictions, ``z`` ``[N, D]`` projections of the other view; the model applies
    ``stop_gradient(z)`` and symmetrises ``L = D(p1, z2)/2 + D(p2, z1)/2``. Returns a float32 scalar in
    ``[-1, 1]``.
    """
    return tf.reduce_mean(-_cosine(_f32(p), _f32(z)))


def _batch_standardize(z: tf.Tensor, epsilon: float) -> tf.Tensor:
    """Standardise every column over the batch with the population variance (``BatchNorm1d``)."""
    mean, variance = tf.nn.moments(z, axes=[0], keepdims=True)
    return (z - mean) * tf.math.rsqrt(variance + epsilon)


def barlow_twins_loss(
    z1: tf.Tensor, z2: tf.Tensor, lambda_: float = 5e-3, epsilon: float = 1e-5
) -> tf.Tensor:
    """Barlow Twins' redundancy-reduction loss (Zbontar et al., 2021, eqs. 1-2).

    ``L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2`` with the cross-correlation
    ``C = z1n^T z2n / N`` of the batch-standardised embeddings. As in the official code (a
    ``BatchNorm1d(affine=False)`` in training mode) each dimension is standardised with its mean and
    *population* variance over the batch, ``zn = (z - mean) / sqrt(var + epsilon)``, ``epsilon`` 1e-5.
    The paper's ``lambda`` is 5e-3; the official code uses 0.0051. (Older versions of that code also
    multiplied the loss by a ``scale-loss`` of 1/32; this function does not.)

    Args:
        z1, z2: ``[N, D]`` projections of the two views.

    Returns:
        A float32 scalar; 0 iff ``C`` is the identity.
    """
    z1n = _batch_standardize(_f32(z1), epsilon)
    z2n = _batch_standardize(_f32(z2), epsilon)
    n = tf.cast(tf.shape(z1n)[0], tf.float32)
    c = tf.matmul(z1n, z2n, transpose_a=True) / n  # [D, D]
    on_diagonal = tf.reduce_sum(tf.square(1.0 - tf.linalg.diag_part(c)))
    off_diagonal = tf.reduce_sum(tf.square(_off_diagonal(c)))
    return on_diagonal + lambda_ * off_diagonal


def _variance_term(z: tf.Tensor, gamma: float, eps: float) -> tf.Tensor:
    n = tf.cast(tf.shape(z)[0], tf.float32)
    centered = z - tf.reduce_mean(z, axis=0, keepdims=True)
    std = tf.sqrt(tf.reduce_sum(tf.square(centered), axis=0) / (n - 1.0) + eps)
    return tf.reduce_mean(tf.nn.relu(gamma - std))


def _covariance_term(z: tf.Tensor) -> tf.Tensor:
    n = tf.cast(tf.shape(z)[0], tf.float32)
    dim = tf.cast(tf.shape(z)[1], tf.float32)
    centered = z - tf.reduce_mean(z, axis=0, keepdims=True)
    cov = tf.matmul(centered, centered, transpose_a=True) / (n - 1.0)  # [D, D]
    return tf.reduce_sum(tf.square(_off_diagonal(cov))) / dim


def vicreg_loss(
    z1: tf.Tensor,
    z2: tf.Tensor,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
    gamma: float = 1.0,
) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """VICReg's loss (Bardes et al., 2022, eq. 6), as in the paper's pseudocode and official code.

    ``L = lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')]`` with

    * invariance ``s = (1 / (N D)) sum_{b,j} (z_bj - z'_bj)^2`` (``F.mse_loss``);
    * variance ``v(Z) = (1/D) sum_j max(0, gamma - sqrt(Var(z_j) + eps))``, unbiased ``Var``;
    * covariance ``c(Z) = (1/D) sum_{i != j} C(Z)_ij^2``, ``C(Z) = (Z - mean)^T (Z - mean) / (N - 1)``.

    Paper defaults ``lambda = mu = 25``, ``nu = 1``, ``gamma = 1``, ``eps = 1e-4``. Needs ``N >= 2``.

    Args:
        z1, z2: ``[N, D]`` expander outputs of the two views.

    Returns:
        ``(loss, parts)`` with ``parts = {"invariance": s, "variance": (v(Z) + v(Z'))/2,
        "covariance": c(Z) + c(Z')}``, the unweighted float32 terms.
    """
    z1, z2 = _f32(z1), _f32(z2)
    invariance = tf.reduce_mean(tf.square(z1 - z2))
    variance = 0.5 * (_variance_term(z1, gamma, eps) + _variance_term(z2, gamma, eps))
    covariance = _covariance_term(z1) + _covariance_term(z2)
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}


def embedding_std(z: tf.Tensor) -> tf.Tensor:
    """Collapse indicator from SimSiam (Chen & He, 2021, Fig. 2): the mean over dimensions of the
    per-dimension population std (over the batch) of the L2-normalised ``z`` ``[N, D]``.

    About ``1/sqrt(D)`` for well-spread embeddings, 0 when every sample maps to the same direction.
    """
    _, variance = tf.nn.moments(tf.math.l2_normalize(_f32(z), axis=-1), axes=[0])
    return tf.reduce_mean(tf.sqrt(tf.maximum(variance, 0.0)))


def nearest_neighbours(
    queries: tf.Tensor, support: tf.Tensor, valid: tf.Tensor = None
) -> Tuple[tf.Tensor, tf.Tensor]:
    """NNCLR's support-set lookup (Dwibedi et al., 2021, eq. 2): for each query the row of ``support``
    with the largest cosine similarity, among the ``valid`` rows only.

    Args:
        queries: ``[N, D]`` embeddings (normalised inside).
        support: ``[K, D]`` support set (normalised inside).
        valid: optional bool ``[K]``; rows where it is False are never chosen (at least one must be True).

    Returns:
        ``(neighbours, indices)``: the L2-normalised chosen rows ``[N, D]`` (float32, no gradient) and
        their indices ``[N]`` (int64).
    """
    q = tf.math.l2_normalize(_f32(queries), axis=-1)
    s = tf.math.l2_normalize(_f32(tf.stop_gradient(support)), axis=-1)
    similarity = tf.matmul(q, s, transpose_b=True)  # [N, K]
    if valid is not None:
        similarity = tf.where(valid[None, :], similarity, -_LARGE_NUM)
    indices = tf.argmax(similarity, axis=-1, output_type=tf.int64)
    return tf.stop_gradient(tf.gather(s, indices)), indices


def nnclr_loss(
    neighbours: tf.Tensor, predictions: tf.Tensor, temperature: float = 0.1
) -> Tuple[tf.Tensor, tf.Tensor]:
    """NNCLR's InfoNCE term (Dwibedi et al., 2021, eq. 2) for one direction.

    ``L_i = -log exp(NN(z_i) . p_i / t) / sum_k exp(NN(z_i) . p_k / t)`` over the ``N`` rows of the
    global batch, cosine similarities (both normalised inside). The model stops the neighbours'
    gradient and symmetrises with the other view: ``(L(NN(z1), p2) + L(NN(z2), p1)) / 2``.

    Args:
        neighbours: ``[N, D]`` nearest neighbours of one view's projections.
        predictions: ``[N, D]`` predictions of the other view; row ``i`` is ``neighbours[i]``'s positive.
        temperature: softmax temperature ``t`` (paper: 0.1).

    Returns:
        ``(loss, accuracy)`` float32 scalars: the mean over rows, and the fraction of rows whose
        positive is the most similar prediction.
    """
    nn = tf.math.l2_normalize(_f32(neighbours), axis=-1)
    p = tf.math.l2_normalize(_f32(predictions), axis=-1)
    logits = tf.matmul(nn, p, transpose_b=True) / temperature  # [N, N]
    labels = tf.range(tf.shape(nn)[0])
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    hits = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
    return loss, tf.reduce_mean(tf.cast(hits, tf.float32))


def dino_cross_entropy(
    student: Sequence[tf.Tensor],
    teacher: Sequence[tf.Tensor],
    center: tf.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """DINO's per-example loss (Caron et al., 2021, eq. 3): ``H(P_t, P_s)`` averaged over the pairs
    (teacher view ``i``, student view ``j``) with ``i != j``.

    ``P_t = softmax((t - center) / teacher_temperature)`` (the model stops its gradient) and
    ``log P_s = log_softmax(s / student_temperature)``. Teacher view ``i`` is student view ``i`` (the
    global crops come first), so same-view pairs are skipped.

    Args:
        student: ``V_s`` student outputs ``[N, K]`` (global crops first, then local crops).
        teacher: ``V_t <= V_s`` teacher outputs ``[N, K]`` of the global crops.
        center: ``[K]`` the teacher's running center.
        student_temperature, teacher_temperature: paper: 0.1 and 0.04 (warmed up from 0.04 to 0.07).

    Returns:
        ``(loss, extras)``: per-example loss ``[N]`` and per-example ``teacher_entropy`` (entropy of
        ``P_t`` / ln K, mean over teacher views) and ``kl_teacher_student`` (mean over the pairs), ``[N]``.
    """
    if len(teacher) > len(student) or len(student) < 2:
        raise ValueError(
            f"DINO needs at least two student views and no more teacher views than student views; got "
            f"{len(student)} student and {len(teacher)} teacher views."
        )
    center = _f32(center)
    log_student = [tf.nn.log_softmax(_f32(s) / student_temperature, axis=-1) for s in student]
    log_teacher = [tf.nn.log_softmax((_f32(t) - center) / teacher_temperature, axis=-1) for t in teacher]
    probs = [tf.exp(lt) for lt in log_teacher]
    entropies = [-tf.reduce_sum(p * lt, axis=-1) for p, lt in zip(probs, log_teacher)]  # [N] each
    cross, kl = [], []
    for i, (p, entropy) in enumerate(zip(probs, entropies)):
        for j, ls in enumerate(log_student):
            if i == j:
                continue
            ce = -tf.reduce_sum(p * ls, axis=-1)
            cross.append(ce)
            kl.append(ce - entropy)
    num_classes = tf.cast(tf.shape(center)[-1], tf.float32)
    extras = {
        "teacher_entropy": tf.add_n(entropies) / (len(entropies) * tf.math.log(num_classes)),
        "kl_teacher_student": tf.add_n(kl) / len(kl),
    }
    return tf.add_n(cross) / len(cross), extras


def sinkhorn_knopp(scores: tf.Tensor, epsilon: float = 0.05, iterations: int = 3) -> tf.Tensor:
    """SwAV's equipartitioned soft codes (Caron et al., 2020, eq. 3; official ``distributed_sinkhorn``).

    ``Q = exp(scores / epsilon)`` normalised to sum 1, then ``iterations`` rounds of: every prototype
    (column) to total ``1/K``, every sample (row) to total ``1/N``; finally scaled so rows sum to 1.
    Numerically safe: each prototype's maximum is subtracted before ``exp`` (a per-column factor that
    the first column normalisation removes, so the codes equal the official ones wherever those do not
    overflow), and an all-underflowed row gets a zero code instead of NaN. No gradient flows. Pass the
    scores of the **global** batch (gathered from all replicas): the normalisation spans it, as the
    official code's all-reduced sums do.

    Args:
        scores: ``[N, K]`` prototype scores ``z . c_k`` (cosines) of the global batch.
        epsilon: entropic regularisation (paper: 0.05; 0.03 with a small batch and no queue).
        iterations: Sinkhorn-Knopp rounds, at least 1 (paper: 3).

    Returns:
        ``[N, K]`` float32 codes: each row sums to 1; after many iterations each column sums to ``N/K``.
    """
    if int(iterations) < 1:
        raise ValueError(f"sinkhorn_knopp needs at least one iteration, got {iterations}.")
    s = _f32(tf.stop_gradient(scores)) / epsilon
    q = tf.exp(s - tf.reduce_max(s, axis=0, keepdims=True))
    q /= tf.reduce_sum(q)
    n = tf.cast(tf.shape(q)[0], tf.float32)
    k = tf.cast(tf.shape(q)[1], tf.float32)
    for _ in range(int(iterations)):
        q = q / tf.reduce_sum(q, axis=0, keepdims=True) / k  # each prototype gets 1/K of the mass
        q = tf.math.divide_no_nan(q, tf.reduce_sum(q, axis=1, keepdims=True)) / n  # each sample 1/N
    return tf.stop_gradient(q * n)


def swapped_prediction_loss(scores: Sequence[tf.Tensor], codes: Sequence[tf.Tensor],
                            temperature: float = 0.1) -> tf.Tensor:
    """SwAV's swapped prediction (Caron et al., 2020, eq. 1, official ``main_swav.py``).

    For each view ``i`` with codes ``q_i``, the cross-entropy ``-sum_k q_ik log softmax(s_v / t)_k``
    against every *other* view ``v`` (mean over rows, then over the ``V - 1`` other views); the result
    is the mean over the coded views. The codes carry no gradient (stop-gradient inside).

    Args:
        scores: ``V >= 2`` views' prototype scores ``[N, K]``, the coded (global) views first.
        codes: ``1 <= G <= V`` codes ``[N, K]`` (:func:`sinkhorn_knopp`) of ``scores[:G]``.
        temperature: softmax temperature ``t`` (paper: 0.1).

    Returns:
        A float32 scalar.
    """
    if len(scores) < 2 or not 1 <= len(codes) <= len(scores):
        raise ValueError(f"Swapped prediction needs at least two views and 1 to {len(scores)} coded "
                         f"views; got {len(scores)} views and {len(codes)} codes.")
    log_probs = [tf.nn.log_softmax(_f32(s) / temperature, axis=-1) for s in scores]
    total = 0.0
    for i, q in enumerate(codes):
        q = tf.stop_gradient(_f32(q))
        others = [-tf.reduce_mean(tf.reduce_sum(q * lp, axis=-1)) for v, lp in enumerate(log_probs) if v != i]
        total += tf.add_n(others) / len(others)
    return total / len(codes)


__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "dino_cross_entropy",
    "embedding_std",
    "info_nce",
    "nearest_neighbours",
    "nnclr_loss",
    "nt_xent",
    "simsiam_loss",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
    "vicreg_loss",
]
