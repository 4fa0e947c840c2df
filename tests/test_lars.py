"""``LARS`` against a NumPy reference of SimCLR's LARS update, and the ``lars`` recipe."""

from __future__ import annotations

import re

import numpy as np
import pytest

from keras_ssl.backend import keras, tf
from keras_ssl.optimizers import LARS, LARS_EXCLUDE, WarmupDecay, lars


def reference(
    weights, gradients, lrs, momentum=0.9, weight_decay=0.0, eta=0.001, excluded=(), nesterov=False
):
    """SimCLR's ``LARSOptimizer`` (classic momentum) in float64 NumPy.

    ``weights``: name -> array; ``gradients``: one name -> array dict per step; ``lrs``: lr per step.
    """
    weights = {k: np.asarray(v, np.float64).copy() for k, v in weights.items()}
    velocity = {k: np.zeros_like(v) for k, v in weights.items()}
    for grads, lr in zip(gradients, lrs):
        for name, w in weights.items():
            skip = any(re.search(p, name) for p in excluded)
            g = np.asarray(grads[name], np.float64) + (0.0 if skip else weight_decay * w)
            trust = 1.0
            if not skip:
                w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
                if w_norm > 0 and g_norm > 0:
                    trust = eta * w_norm / g_norm
            velocity[name] = momentum * velocity[name] + lr * trust * g
            step = momentum * velocity[name] + lr * trust * g if nesterov else velocity[name]
            weights[name] = w - step
    return weights


def make_case(seed, steps=4):
    rng = np.random.default_rng(seed)
    shapes = {
        "dense/kernel": (5, 3),
        "dense/bias": (3,),
        "batch_normalization/gamma": (3,),
        "conv/kernel": (2, 2),
    }
    weights = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    weights["conv/kernel"][:] = 0.0  # a zero weight: trust ratio falls back to 1
    gradients = [
        {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(steps)
    ]
    gradients[1]["dense/kernel"][:] = 0.0  # a zero gradient: trust ratio falls back to 1
    return weights, gradients


def run(optimizer, weights, gradients, compiled=False):
    variables = {k: tf.Variable(v, name=k) for k, v in weights.items()}
    names = list(variables)

    def apply(grads):
        optimizer.apply_gradients([(g, variables[k]) for k, g in zip(names, grads)])

    apply_fn = tf.function(apply) if compiled else apply  # "xla": XLA per-variable updates in a graph
    for step_grads in gradients:
        apply_fn([tf.constant(step_grads[k]) for k in names])
    return {k: v.numpy() for k, v in variables.items()}


def assert_matches(result, expected, tol=1e-5):
    for name in expected:
        np.testing.assert_allclose(result[name], expected[name], rtol=tol, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("compiled", [False, True, "xla"])
def test_lars_matches_reference(nesterov, compiled):
    weights, gradients = make_case(0)
    optimizer = LARS(learning_rate=0.5, momentum=0.9, weight_decay=0.01, eta=0.02, nesterov=nesterov)
    # Keras compiles each variable's update with XLA only when a GPU is present; force that path.
    optimizer.jit_compile = compiled == "xla"
    result = run(optimizer, weights, gradients, compiled)
    expected = reference(weights, gradients, [0.5] * 4, 0.9, 0.01, 0.02, LARS_EXCLUDE, nesterov)
    assert_matches(result, expected)
    # Adaptation matters here: a plain momentum-SGD kernel update would be far off.
    plain = reference(weights, gradients, [0.5] * 4, 0.9, 0.0, 0.02, excluded=("",))
    assert np.abs(plain["dense/kernel"] - expected["dense/kernel"]).max() > 0.1


def test_lars_with_a_schedule_matches_reference():
    weights, gradients = make_case(1, steps=6)
    schedule = WarmupDecay(1.0, warmup_steps=2, total_steps=6, decay="cosine")
    optimizer = LARS(learning_rate=schedule, weight_decay=1e-3, eta=0.01)
    result = run(optimizer, weights, gradients, compiled=True)
    lrs = [float(schedule(step)) for step in range(6)]
    assert lrs[0] < lrs[1] and lrs[-1] < lrs[2]
    assert_matches(result, reference(weights, gradients, lrs, 0.9, 1e-3, 0.01, LARS_EXCLUDE))


def test_excluded_bias_updates_like_momentum_sgd():
    weights, gradients = make_case(2, steps=5)
    result = run(LARS(learning_rate=0.1, weight_decay=0.5, eta=0.001), weights, gradients)
    sgd = run(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), weights, gradients)
    for name in ("dense/bias", "batch_normalization/gamma"):
        np.testing.assert_allclose(result[name], sgd[name], rtol=1e-5, atol=1e-6)
    # The kernel is adapted and decayed, so it does not follow SGD.
    assert np.abs(result["dense/kernel"] - sgd["dense/kernel"]).max() > 0.05
    # A zero-initialised kernel takes a plain SGD first step (trust ratio 1, decay of 0 is 0).
    first = run(LARS(learning_rate=0.1, weight_decay=0.5, eta=0.001), weights, gradients[:1])
    np.testing.assert_allclose(first["conv/kernel"], -0.1 * gradients[0]["conv/kernel"], rtol=1e-6)


def test_trust_ratio_makes_the_step_scale_free():
    # First step of an adapted variable, no decay: ||dw|| = lr * eta * ||w||, whatever the gradient scale.
    w = np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32)
    for scale in (1e-3, 1.0, 1e3):
        variable = tf.Variable(w, name="dense/kernel")
        LARS(learning_rate=2.0, weight_decay=0.0, eta=0.001).apply_gradients(
            [(tf.constant(w * 0 + scale), variable)]
        )
        step = np.linalg.norm(variable.numpy() - w)
        assert step == pytest.approx(2.0 * 0.001 * np.linalg.norm(w), rel=1e-5)


def test_custom_exclusion_lists():
    weights, gradients = make_case(4)
    # Nothing excluded: the bias is adapted and decayed too.
    result = run(LARS(0.3, weight_decay=0.01, eta=0.01, exclude_from_layer_adaptation=()), weights, gradients)
    assert_matches(result, reference(weights, gradients, [0.3] * 4, 0.9, 0.01, 0.01, excluded=()))
    # Separate lists: biases skip adaptation but are decayed.
    optimizer = LARS(
        0.3,
        weight_decay=0.01,
        eta=0.01,
        exclude_from_layer_adaptation=("bias",),
        exclude_from_weight_decay=(),
    )
    result = run(optimizer, weights, gradients)
    variables = {k: tf.Variable(v, name=k) for k, v in weights.items()}
    assert not optimizer._use_layer_adaptation(variables["dense/bias"])
    assert optimizer._use_weight_decay(variables["dense/bias"])
    # Reference for the bias alone: decayed plain momentum SGD.
    w, v = weights["dense/bias"].astype(np.float64), 0.0
    for grads in gradients:
        v = 0.9 * v + 0.3 * (grads["dense/bias"] + 0.01 * w)
        w = w - v
    np.testing.assert_allclose(result["dense/bias"], w, rtol=1e-5)


def test_default_exclusions_cover_keras_variable_names():
    model = keras.Sequential(
        [
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(2),
        ]
    )
    model.build((None, 3))
    optimizer = LARS()
    adapted = sorted(v.name for v in model.trainable_variables if optimizer._use_layer_adaptation(v))
    decayed = sorted(v.name for v in model.trainable_variables if optimizer._use_weight_decay(v))
    assert adapted == decayed == sorted(v.name for v in model.trainable_variables if "kernel" in v.name)
    assert len(adapted) == 2


def test_config_round_trip():
    optimizer = LARS(
        learning_rate=0.2,
        momentum=0.8,
        weight_decay=1e-4,
        eta=0.002,
        nesterov=True,
        exclude_from_layer_adaptation=("bias",),
        exclude_from_weight_decay=("bias", "gamma"),
    )
    config = optimizer.get_config()
    clone = LARS.from_config(config)
    assert clone.get_config() == config
    assert (config["momentum"], config["eta"], config["nesterov"], config["weight_decay"]) == (
        0.8,
        0.002,
        True,
        1e-4,
    )
    assert config["exclude_from_layer_adaptation"] == ["bias"]
    assert config["exclude_from_weight_decay"] == ["bias", "gamma"]
    assert float(config["learning_rate"]) == pytest.approx(0.2)


def test_lars_recipe():
    optimizer = lars(learning_rate=0.6, warmup_steps=10, total_steps=100, weight_decay=1e-6, momentum=0.9)
    assert isinstance(optimizer, LARS)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, WarmupDecay) and schedule.decay == "cosine"
    assert float(schedule(9)) == pytest.approx(0.6) and float(schedule(100)) == pytest.approx(0.0, abs=1e-7)
    assert (optimizer.weight_decay, optimizer.momentum, optimizer.eta) == (1e-6, 0.9, 0.001)
    assert optimizer.get_config()["exclude_from_layer_adaptation"] == list(LARS_EXCLUDE)


def test_lars_trains_a_keras_model():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x @ rng.standard_normal((6, 1))).astype(np.float32)
    model = keras.Sequential(
        [keras.layers.Dense(16, activation="relu"), keras.layers.BatchNormalization(), keras.layers.Dense(1)]
    )
    model.compile(lars(learning_rate=0.2, warmup_steps=2, total_steps=40, eta=0.05), "mse")
    losses = model.fit(x, y, batch_size=64, epochs=40, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.05 * losses[0]
