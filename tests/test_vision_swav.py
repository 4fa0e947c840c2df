"""SwAV: Sinkhorn-Knopp codes and the swapped-prediction loss against NumPy, training with multi-crop
views (unit-norm prototypes after every step, frozen prototypes untouched, a queue that enters the
codes once full), one replica vs two, mixed precision and XLA, a killed run resumed bit for bit, export,
bad input, and the HealthMonitor catching a collapse while leaving a healthy run alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from crash import CrashAtStep
from numerics import RESUME_RTOL, STEP_RTOL, assert_close_to_scale, close, state_difference

from keras_ssl import augment as A
from keras_ssl import evaluation, losses
from keras_ssl.backend import keras, tf
from keras_ssl.evaluation import CollapseWarning, HealthMonitor
from keras_ssl.vision import SwAV
from keras_ssl.vision import heads as H
from keras_ssl.vision.backbones import small_cnn
from keras_ssl.vision.methods.clustering import cluster_entropy, prediction_sharpness

TESTS = os.path.dirname(os.path.abspath(__file__))


def official_sinkhorn(out, epsilon=0.05, iterations=3):
    """NumPy transcription of SwAV's ``distributed_sinkhorn`` (one process), float64."""
    q = np.exp(np.asarray(out, np.float64) / epsilon).T  # [K, B]
    k, b = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(axis=1, keepdims=True)
        q /= k
        q /= q.sum(axis=0, keepdims=True)
        q /= b
    return (q * b).T


def numpy_swapped_loss(scores, codes, temperature):
    def log_softmax(x):
        x = x / temperature
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    total = 0.0
    for i, q in enumerate(codes):
        sub = [-np.mean(np.sum(q * log_softmax(s), axis=1)) for v, s in enumerate(scores) if v != i]
        total += np.sum(sub) / (len(scores) - 1)
    return total / len(codes)


def unit_scores(rng, n, k, d=8):
    z = rng.normal(size=(n, d))
    c = rng.normal(size=(d, k))
    unit = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=0))
    return unit.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The pure functions


def test_sinkhorn_matches_the_official_algorithm():
    rng = np.random.default_rng(0)
    for n, k, eps, iterations in ((16, 10, 0.05, 3), (12, 30, 0.1, 1), (40, 7, 0.03, 5)):
        scores = unit_scores(rng, n, k)
        codes = losses.sinkhorn_knopp(scores, eps, iterations).numpy()
        assert_close_to_scale(codes, official_sinkhorn(scores, eps, iterations), 1e-5, f"{n}x{k}")
        np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)  # each row is a distribution


def test_sinkhorn_marginals_converge_to_equipartition():
    scores = unit_scores(np.random.default_rng(1), 24, 6)
    codes = losses.sinkhorn_knopp(scores, 0.05, 300).numpy()
    assert_close_to_scale(codes.sum(axis=1), np.ones(24), 1e-5, "rows: 1/B each before the final x B")
    assert_close_to_scale(codes.sum(axis=0), np.full(6, 24 / 6), 1e-4, "columns: 1/K each")
    few = losses.sinkhorn_knopp(scores, 0.05, 1).numpy().sum(axis=0)
    assert np.abs(few - 4).max() > 10 * np.abs(codes.sum(axis=0) - 4).max()  # iterating is what equalises


def test_sinkhorn_is_safe_where_exp_overflows():
    scores = unit_scores(np.random.default_rng(2), 16, 8) + 4.0  # exp(100): inf in float32
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(np.exp(scores / np.float32(0.05))))  # the official order in float32
    codes = losses.sinkhorn_knopp(scores, 0.05).numpy()
    assert np.all(np.isfinite(codes))
    assert_close_to_scale(codes, official_sinkhorn(scores, 0.05), 1e-5, "max-shifted = float64 official")


def test_swapped_prediction_loss_matches_numpy():
    rng = np.random.default_rng(3)
    scores = [unit_scores(rng, 8, 12) for _ in range(5)]
    codes = [official_sinkhorn(s) for s in scores[:2]]
    loss = float(losses.swapped_prediction_loss(scores, codes, temperature=0.1))
    assert close(loss, numpy_swapped_loss(scores, codes, 0.1), 1e-5)
    # The loss only sees other views: a coded view's own scores do not enter its term.
    changed = [scores[0] * 0.0] + scores[1:]
    one_coded = float(losses.swapped_prediction_loss(changed, codes[:1], 0.1))
    assert close(one_coded, numpy_swapped_loss(scores, codes[:1], 0.1), 1e-5)
    with pytest.raises(ValueError, match="at least two views"):
        losses.swapped_prediction_loss(scores[:1], codes[:1])


def test_cluster_entropy():
    spread = np.eye(8, dtype=np.float32)  # every row on its own prototype
    assert close(float(cluster_entropy(spread)), 1.0, 1e-6)
    assert float(cluster_entropy(np.tile(spread[:1], (8, 1)))) == 0.0  # all on one prototype
    half = np.concatenate([spread[:4], spread[:4]])
    assert close(float(cluster_entropy(half)), np.log(4) / np.log(8), 1e-6)


# --------------------------------------------------------------------------------------------
# Training


def images(n=24, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 1)).astype(np.float32)


def build_swav(size=16, local=8, num_local=1, queue_size=16, freeze=2, queue_start=2, optimizer=None,
               **kwargs):
    keras.utils.set_random_seed(0)
    model = SwAV(small_cnn((None, None, 1), width=4),
                 augment=A.multi_crop(size, local, num_local=num_local, seed=0), num_prototypes=16,
                 projection=H.simclr_projection(output_dim=8, hidden_dim=16), queue_size=queue_size,
                 queue_start_step=queue_start, freeze_prototypes_steps=freeze, **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.05, momentum=0.9))
    return model


class Record(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.kernels = [self.model.prototypes.kernel.numpy().copy()]
        self.encoder = [self.model.encoder.weights[0].numpy().copy()]

    def on_train_batch_end(self, batch, logs=None):
        self.kernels.append(self.model.prototypes.kernel.numpy().copy())
        self.encoder.append(self.model.encoder.weights[0].numpy().copy())


FIT = dict(batch_size=8, shuffle=False, epochs=3, verbose=0)  # 24 images: 3 steps an epoch, 9 in all


@pytest.fixture(scope="module")
def trained():
    """The uninterrupted run: 9 steps, prototypes frozen for 2, a 16-row queue (2 steps) used from step 2."""
    model = build_swav()
    record, monitor = Record(), HealthMonitor.for_model(model, patience=2, per="batch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(images(), **FIT, callbacks=[record, monitor]).history
    return model, record, history, [w for w in caught if issubclass(w.category, CollapseWarning)], monitor


def test_swav_trains_with_unit_norm_frozen_prototypes(trained):
    model, record, history, _, _ = trained
    assert all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0], history
    for kernel in record.kernels:  # unit columns at the start and after every step
        assert_close_to_scale(np.linalg.norm(kernel, axis=0), np.ones(16), 1e-6, "prototype norms")
    np.testing.assert_array_equal(record.kernels[1], record.kernels[0])  # frozen during steps 1 and 2
    np.testing.assert_array_equal(record.kernels[2], record.kernels[0])
    assert np.abs(record.kernels[3] - record.kernels[2]).max() > 1e-4  # trained from step 3 on
    assert np.abs(record.encoder[1] - record.encoder[0]).max() > 1e-4  # the rest trains meanwhile


def test_queue_holds_all_crops_and_enters_the_codes(trained):
    model = trained[0]
    assert [int(q.filled.numpy()) for q in model.queues] == [16, 16]  # one queue per global crop
    values = model.queues[0].values().numpy()
    assert_close_to_scale(np.linalg.norm(values, axis=1), np.ones(16), 1e-5, "queued projections")
    scores = tf.constant(unit_scores(np.random.default_rng(4), 8, 16))
    queued = model.prototypes(model.queues[0].values())
    expected = losses.sinkhorn_knopp(tf.concat([queued, scores], axis=0))[-8:]
    with_queue = model.codes(scores, model.queues[0])
    assert_close_to_scale(with_queue.numpy(), expected.numpy(), 1e-6, "codes with the queue")
    assert np.abs(with_queue.numpy() - losses.sinkhorn_knopp(scores).numpy()).max() > 1e-3


def _state(model):
    variables = model.weights + model.optimizer.variables()
    return {f"{i:03d}/{v.name}": v.numpy() for i, v in enumerate(variables)}


def test_killed_run_resumes_bit_for_bit(trained, tmp_path):
    reference = trained[0]
    backup = str(tmp_path / "backup")
    crashed = build_swav()
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit(images(), **FIT, callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=4),
                                                CrashAtStep(6)])
    resumed = build_swav()
    resumed.fit(images(), **FIT, callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=4)])
    a, b = _state(reference), _state(resumed)
    assert sorted(a) == sorted(b)
    names = " ".join(a)
    assert "queue" in names and "filled" in names and names.count("rng_state") == 3 * 4  # 3 views x 4 ops
    worst = state_difference(a, b)
    print(f"swav resumed: {len(a)} variables, max |resumed - uninterrupted| / max |value| = {worst:.3g}")
    assert worst <= RESUME_RTOL  # measured: 0 (bit for bit), once 4.7e-10 absolute with oneDNN off
    # the bound catches a state two steps behind (the crashed run's): the size of a training step
    assert state_difference(a, _state(crashed)) > 1e3 * RESUME_RTOL


# XLA compilation dominates (~35-65 s on a busy 2-core CPU): marked slow like test_precision's jit cases.
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16",
                                    pytest.param("jit", marks=pytest.mark.slow)], indirect=True)
def test_trains_in_mixed_precision_and_xla(policy):
    keras.utils.set_random_seed(0)
    crops_only = A.MultiCrop(A.RandomResizedCrop(8, seed=1), A.RandomResizedCrop(4, seed=2), 2, 1)
    model = SwAV(small_cnn((None, None, 1), width=4), augment=crops_only,
                 num_prototypes=8, projection=H.simclr_projection(output_dim=8, hidden_dim=8),
                 freeze_prototypes_steps=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=policy == "jit")
    x = images(16, 8)
    loss_share, _ = model.compute_loss_and_stats(model.pretext(x[:8], training=True), training=True)
    assert loss_share.dtype == tf.float32
    before = model.prototypes.kernel.numpy().copy()
    history = model.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert np.all(np.isfinite(history["loss"])), history
    kernel = model.prototypes.kernel.numpy()
    assert np.abs(kernel - before).max() > 0
    assert_close_to_scale(np.linalg.norm(kernel, axis=0), np.ones(8), 1e-6, "prototype norms")


REPLICAS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from keras_ssl.backend import keras, tf
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from numerics import relative_step_difference
    from keras_ssl import augment as A, losses
    from keras_ssl.training import replica_gather
    from keras_ssl.vision import heads as H
    from keras_ssl.vision.backbones import small_cnn
    from keras_ssl.vision.methods.clustering import SwAV

    images = np.random.default_rng(0).random((8, 16, 16, 1)).astype(np.float32)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def build(strategy, start=None, multi_crop=True):
        crops = A.MultiCrop([A.RandomResizedCrop(16, seed=s) for s in (1, 2)], A.RandomResizedCrop(8, seed=3),
                            2, 1)
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = SwAV(small_cnn((None, None, 1), width=4, sync_batchnorm=True),
                         augment=crops if multi_crop else None, num_prototypes=16,
                         projection=H.simclr_projection(output_dim=8, hidden_dim=16), queue_size=16,
                         freeze_prototypes_steps=1)
            if start is not None:
                model.set_weights(start)
            model.compile(optimizer=keras.optimizers.SGD(0.5))
        return model

    def run(strategy, start=None):
        model = build(strategy, start)
        before = model.get_weights()
        # Three steps: the queue (16 rows = 2 steps of 8) is full and enters the codes of the third.
        history = model.fit(tf.data.Dataset.from_tensors(images).repeat(3), epochs=1, verbose=0).history
        return before, model.get_weights(), history, int(model.queues[0].filled.numpy())

    start, single_after, single, filled = run(tf.distribute.get_strategy())
    _, multi_after, multi, _ = run(mirrored, start)
    scores = np.random.default_rng(1).normal(size=(8, 16)).astype(np.float32)
    reference = losses.sinkhorn_knopp(scores).numpy()
    halves = [tf.constant(scores[:4]), tf.constant(scores[4:])]
    values = mirrored.experimental_distribute_values_from_function(
        lambda ctx: halves[ctx.replica_id_in_sync_group])
    codes = mirrored.run(tf.function(lambda s: losses.sinkhorn_knopp(replica_gather(s))), args=(values,))
    code_diff = max(float(np.abs(c.numpy() - reference).max() / np.abs(reference).max())
                    for c in mirrored.experimental_local_results(codes))
    try:  # one image for two replicas
        build(mirrored, multi_crop=False).fit(tf.data.Dataset.from_tensors(images[:1]), epochs=1, verbose=0)
        small_batch_error = None
    except (ValueError, tf.errors.InvalidArgumentError) as err:
        small_batch_error = str(err)
    print(json.dumps({"loss": [single["loss"][0], multi["loss"][0]],
                      "relative_step_diff": relative_step_difference(start, single_after, multi_after),
                      "filled": filled, "code_diff": code_diff, "small_batch_error": small_batch_error}))
""")


def test_two_replicas_match_one():
    """Global codes (the scores of both replicas in one Sinkhorn), synchronised BN, the queue of both
    replicas' crops: one step equals the single-replica step within float rounding."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", REPLICAS, TESTS], capture_output=True, text=True,
                         timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print({k: v for k, v in result.items() if k != "small_batch_error"})
    assert result["filled"] == 16
    assert close(*result["loss"], 1e-4), result
    assert result["relative_step_diff"] <= STEP_RTOL, result  # measured: 5e-6
    assert result["code_diff"] < 1e-5  # relative; codes of the gathered scores, the same on both replicas
    # A global batch of one image on two replicas stops with the fix, before any collective op.
    assert "needs a global batch of at least 2 images" in (result["small_batch_error"] or ""), result


# --------------------------------------------------------------------------------------------
# Export and bad input


def test_export_serves_the_encoder_and_projection(tmp_path):
    from keras_ssl import export_saved_model
    from keras_ssl.export.wordpiece import ExportError

    keras.utils.set_random_seed(0)
    fixed = SwAV(small_cnn((16, 16, 1), width=4), augment=A.RandomFlip(seed=0), num_prototypes=8,
                 projection=H.simclr_projection(output_dim=8, hidden_dim=16))
    export_saved_model(fixed, str(tmp_path / "swav"))
    served = tf.saved_model.load(str(tmp_path / "swav")).signatures["serve_float"]
    x = images(3, 16)
    out = served(images=tf.constant(x))
    features = fixed.encoder(x, training=False)
    assert_close_to_scale(out["embedding"].numpy(), features.numpy(), what="embedding")
    assert_close_to_scale(out["projection"].numpy(), fixed.projection(features, training=False).numpy(),
                          what="projection")
    # A multi-crop encoder takes any size: served images are resized to the global crop size (16) ...
    any_size = build_swav(queue_size=0)
    export_saved_model(any_size, str(tmp_path / "any_size"))
    served = tf.saved_model.load(str(tmp_path / "any_size")).signatures["serve_float"]
    x = images(2, 24)
    expected = any_size.encoder(tf.image.resize(x, (16, 16)), training=False).numpy()
    assert_close_to_scale(served(images=tf.constant(x))["embedding"].numpy(), expected, what="resized")
    # ... or to image_size=; a bare any-size encoder without one is refused with the fix.
    export_saved_model(any_size.encoder, str(tmp_path / "encoder_12"), image_size=12)
    served = tf.saved_model.load(str(tmp_path / "encoder_12")).signatures["serve_float"]
    expected = any_size.encoder(tf.image.resize(x, (12, 12)), training=False).numpy()
    assert_close_to_scale(served(images=tf.constant(x))["embedding"].numpy(), expected, what="image_size")
    with pytest.raises(ExportError, match="image_size=N"):
        export_saved_model(any_size.encoder, str(tmp_path / "any_size_encoder"))


def test_rejects_bad_input():
    encoder = small_cnn((None, None, 1), width=4)
    head = dict(projection=H.simclr_projection(output_dim=8, hidden_dim=16))
    with pytest.raises(ValueError, match="num_prototypes must be at least 2"):
        SwAV(encoder, num_prototypes=1, **head)
    with pytest.raises(ValueError, match="at least two views"):
        SwAV(encoder, augment=A.MultiCrop(A.RandomResizedCrop(8), None, 1, 0), num_prototypes=4, **head)
    with pytest.raises(ValueError, match="temperature and epsilon must be positive"):
        SwAV(encoder, num_prototypes=4, epsilon=0.0, **head)
    with pytest.raises(ValueError, match=r"takes 16x16 images but gets 8x8.*input_shape=\(None, None, C\)"):
        SwAV(small_cnn((16, 16, 1), width=4), augment=A.multi_crop(16, 8), num_prototypes=4, **head)
    with pytest.raises(ValueError, match="local_size .* larger than global_size"):
        A.multi_crop(8, 16)
    model = SwAV(encoder, augment=A.multi_crop(16, 8, num_local=0), num_prototypes=4, **head)  # allowed
    with pytest.raises(ValueError, match="at least 2 images in a global batch"):
        model.compute_loss_and_stats(model.pretext(images(1), training=True), training=True)


# --------------------------------------------------------------------------------------------
# HealthMonitor


def test_prediction_sharpness_matches_numpy():
    rng = np.random.default_rng(0)
    scores = rng.uniform(-1, 1, (6, 5)).astype(np.float32)
    p = np.exp(scores / 0.1) / np.exp(scores / 0.1).sum(-1, keepdims=True)
    expected = 1.0 - np.mean(-(p * np.log(p)).sum(-1)) / np.log(5)
    assert close(float(prediction_sharpness(scores, 0.1)), expected, 1e-5)
    assert abs(float(prediction_sharpness(np.zeros((4, 5), np.float32), 0.1))) < 1e-6  # uniform: 0
    assert float(prediction_sharpness(np.eye(5, dtype=np.float32) * 10.0, 0.1)) > 0.99  # one-hot: ~1


def test_monitor_catches_the_ln_k_plateau_that_cluster_entropy_misses():
    """The plateau measured on digits (SwAV with 4 local crops, seed 0): loss at ln 100, cluster
    entropy ~0.8, prediction sharpness falling 0.003 -> 0.0002; the healthy run's lowest was 0.006."""
    monitor = HealthMonitor.for_model(SwAV(small_cnn((8, 8, 1), width=4), num_prototypes=4,
                                           projection=H.simclr_projection(output_dim=4, hidden_dim=8)),
                                      patience=3)
    assert monitor.checks == {"cluster_entropy": 0.1, "prediction_sharpness": 0.002}
    monitor.set_model(keras.Sequential())
    healthy = [0.0765, 0.0191, 0.0059, 0.006, 0.0124, 0.0365]
    for epoch, sharpness in enumerate(healthy):
        monitor.on_epoch_begin(epoch)
        monitor.on_epoch_end(epoch, {"cluster_entropy": 0.7, "prediction_sharpness": sharpness})
    assert not monitor.collapsed_at
    plateau = [0.0682, 0.0121, 0.003, 0.0015, 0.0009, 0.0007, 0.0006]
    with pytest.warns(CollapseWarning, match=r"prediction_sharpness = 0\.0007 has stayed below 0\.002.*ln K"):
        for epoch, sharpness in enumerate(plateau):
            monitor.on_epoch_begin(epoch)
            monitor.on_epoch_end(epoch, {"cluster_entropy": 0.83, "prediction_sharpness": sharpness})
    assert monitor.collapsed_at == [(5, None)]


def test_collapse_monitor_leaves_a_healthy_run_alone(trained):
    _, _, history, collapse_warnings, monitor = trained
    assert (monitor.metric, monitor.threshold) == ("cluster_entropy", 0.1)
    assert min(history["cluster_entropy"]) > monitor.threshold, history  # measured: 0.28 to 0.54
    assert min(history["prediction_sharpness"]) > monitor.checks["prediction_sharpness"], history  # 0.34
    assert not collapse_warnings and not monitor.collapsed_at


def test_collapse_monitor_catches_collapse_and_stops():
    """Identical images: after the first step every crop lands on one prototype (the first batch's
    embeddings are batch-norm rounding noise blown up to unit vectors; Keras logs epoch means)."""
    keras.utils.set_random_seed(0)
    model = SwAV(small_cnn((16, 16, 1), width=4), augment=None, num_prototypes=16,
                 projection=H.simclr_projection(output_dim=8, hidden_dim=16), freeze_prototypes_steps=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    monitor = HealthMonitor.for_model(model, patience=2, stop=True, per="batch")
    constant = np.full((160, 16, 16, 1), 0.5, np.float32)
    # The entropy prints as 0.0something, or as exactly 0 (seen once with TF_ENABLE_ONEDNN_OPTS=0).
    expected = r"cluster_entropy = 0(\.0\d*)? has stayed below 0.1.*queue_size"
    with pytest.warns(CollapseWarning, match=expected):
        history = model.fit(constant, batch_size=8, epochs=1, verbose=0, callbacks=[monitor]).history
    assert len(monitor.collapsed_at) == 1  # measured: at batch 1 to 3 of 20 (entropy 0.2 or less, then ~0)
    assert history["cluster_entropy"][0] < 0.1
    assert model.optimizer.iterations.numpy() < 20  # stopped before the end of the epoch


def test_collapse_monitor_defaults_and_errors():
    from keras_ssl import vision

    simclr = vision.SimCLR(small_cnn((8, 8, 1), width=4), projection=H.simclr_projection(output_dim=16,
                                                                                          hidden_dim=8))
    monitor = HealthMonitor.for_model(simclr)
    assert monitor.metric == "embedding_std" and close(monitor.threshold, 0.1 / 4, 1e-9)
    with pytest.raises(ValueError, match="per must be"):
        HealthMonitor(per="step")
    with pytest.raises(ValueError, match="patience"):
        HealthMonitor(patience=0)
    monitor = HealthMonitor("no_such_metric")
    with pytest.raises(ValueError, match="no_such_metric.*pick one of them"):
        monitor.on_epoch_end(0, {"loss": 1.0})


# --------------------------------------------------------------------------------------------
# Cluster assignments


def test_assign_prototypes_is_the_argmax_of_the_prototype_scores(trained):
    model = trained[0]
    x = images(n=10, size=16, seed=3)
    z = model.project([tf.constant(x)], training=False)[0].numpy()  # unit-norm projections [10, 8]
    expected = np.argmax(z @ model.prototypes.kernel.numpy(), axis=1)
    assigned = model.assign_prototypes(x, batch_size=4)  # three batches, the last one partial
    assert assigned.dtype == np.int64 and assigned.shape == (10,)
    np.testing.assert_array_equal(assigned, expected)
    with pytest.raises(ValueError, match=r"images \[n, H, W, C\]"):
        model.assign_prototypes(x[..., 0])


def test_cluster_purity_counts_majority_classes_and_warns_for_too_few_prototypes():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    clusters = np.array([5, 5, 1, 1, 1, 0, 0, 1])  # cluster 5: {0, 0}, 1: {0, 1, 1, 2}, 0: {2, 2}
    np.testing.assert_array_equal(evaluation.contingency(clusters, labels)[:, [0, 1, 5]],
                                  [[0, 1, 2], [0, 2, 0], [2, 1, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough clusters: no warning
        assert evaluation.cluster_purity(clusters, labels, num_clusters=6) == pytest.approx(6 / 8)
    assert evaluation.cluster_purity(labels, labels) == 1.0
    with pytest.warns(UserWarning, match="2 clusters for 3 classes.*at least 3 prototypes"):
        evaluation.cluster_purity(np.array([0, 0, 0, 1, 1, 1, 1, 1]), labels, num_clusters=2)
    with pytest.raises(ValueError, match="same shape"):
        evaluation.cluster_purity(clusters[:3], labels)
    with pytest.raises(ValueError, match="int ids >= 0.*np.unique"):
        evaluation.cluster_purity(clusters, labels.astype(str))
    with pytest.raises(ValueError, match="int ids >= 0"):
        evaluation.cluster_purity(clusters - 1, labels)
