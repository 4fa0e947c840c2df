"""``WarmupDecay`` against a Python reference and ``adamw``'s weight-decay exclusions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_ssl.backend import keras, tf
from keras_ssl.optimizers import NO_DECAY, WarmupDecay, adamw


def reference_lr(step, learning_rate, warmup_steps, total_steps, decay="linear", end_factor=0.0):
    """Linear warmup reaching the peak at the last warmup step, then Hugging Face's decay shapes
    (``get_linear_schedule_with_warmup`` / ``get_cosine_schedule_with_warmup``), floored at
    ``end_factor``."""
    total_steps = max(total_steps, warmup_steps + 1)
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    progress = min(max((step - warmup_steps) / (total_steps - warmup_steps), 0.0), 1.0)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1 - progress
    return learning_rate * (end_factor + (1 - end_factor) * shape)


STEPS = [0, 1, 4, 9, 10, 11, 35, 60, 85, 109, 110, 111, 500]


@pytest.mark.parametrize("decay", ["linear", "cosine"])
@pytest.mark.parametrize("warmup, total, end", [(10, 110, 0.0), (0, 100, 0.0), (10, 110, 0.1), (20, 5, 0.0)])
def test_schedule_matches_reference(decay, warmup, total, end):
    schedule = WarmupDecay(1e-3, warmup, total, decay=decay, end_factor=end)
    compiled = tf.function(schedule)
    for step in STEPS:
        expected = reference_lr(step, 1e-3, warmup, total, decay, end)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-10), step
        assert float(compiled(tf.constant(step, tf.int64))) == pytest.approx(expected, rel=1e-5, abs=1e-10)


def test_schedule_landmarks():
    linear = WarmupDecay(1e-3, 10, 110)
    cosine = WarmupDecay(1e-3, 10, 110, decay="cosine")
    assert float(linear(0)) == pytest.approx(1e-4)  # first update already moves
    assert float(linear(9)) == pytest.approx(1e-3)  # peak at the end of warmup
    assert float(linear(10)) == pytest.approx(1e-3)
    assert float(linear(60)) == pytest.approx(5e-4)  # halfway through the decay
    assert float(cosine(60)) == pytest.approx(5e-4)
    assert float(cosine(35)) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert float(linear(110)) == 0.0 and float(linear(10_000)) == 0.0
    assert float(WarmupDecay(1e-3, 0, 100)(0)) == pytest.approx(1e-3)
    # Monotone: up during warmup, down after.
    values = [float(cosine(s)) for s in range(120)]
    assert values[:10] == sorted(values[:10]) and values[9:] == sorted(values[9:], reverse=True)


def test_schedule_config_round_trip_and_errors():
    schedule = WarmupDecay(3e-4, 5, 50, decay="cosine", end_factor=0.2)
    clone = WarmupDecay.from_config(schedule.get_config())
    for step in (0, 3, 5, 20, 49, 80):
        assert float(clone(step)) == float(schedule(step))
    with pytest.raises(ValueError, match="decay"):
        WarmupDecay(1e-3, 1, 10, decay="step")
    with pytest.raises(ValueError):
        WarmupDecay(1e-3, -1, 10)
    with pytest.raises(ValueError):
        WarmupDecay(1e-3, 1, 0)


def test_adamw_excludes_bias_and_norm_parameters_from_weight_decay():
    lr, wd = 0.1, 0.1
    optimizer = adamw(learning_rate=lr, weight_decay=wd, warmup_steps=0, total_steps=1000)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    kernel = tf.Variable(np.full((3, 2), 2.0, np.float32), name="kernel")
    bias = tf.Variable(np.full((2,), 2.0, np.float32), name="bias")
    model = keras.Sequential([keras.layers.Dense(4), keras.layers.LayerNormalization()])
    model.build((None, 3))
    for v in model.trainable_variables:
        v.assign(tf.fill(v.shape, 2.0))
    variables = [kernel, bias] + model.trainable_variables
    names = [v.name for v in variables]
    assert any("gamma" in n for n in names) and any("beta" in n for n in names)

    factor = 1.0
    for step in range(3):
        factor *= 1 - reference_lr(step, lr, 0, 1000) * wd
        # Zero gradients: Adam moves nothing, so only decoupled weight decay changes a variable.
        optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    for v in variables:
        decays = not any(word in v.name for word in NO_DECAY)
        expected = 2.0 * factor if decays else 2.0
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6, err_msg=v.name)
    assert factor < 0.98  # the kernels really decayed
    assert "kernel" in kernel.name and "kernel" in model.layers[0].kernel.name


def test_adamw_defaults_follow_the_bert_recipe():
    optimizer = adamw(total_steps=100, warmup_steps=10)
    assert optimizer.weight_decay == pytest.approx(0.01)
    assert optimizer.epsilon == pytest.approx(1e-6)
    assert optimizer.global_clipnorm == pytest.approx(1.0)
    config = optimizer.get_config()["learning_rate"]
    assert config["class_name"].endswith("WarmupDecay")
    schedule = WarmupDecay.from_config(config["config"])
    assert schedule.get_config() == {
        "learning_rate": 5e-5,
        "warmup_steps": 10,
        "total_steps": 100,
        "decay": "linear",
        "end_factor": 0.0,
    }
    assert float(schedule(9)) == pytest.approx(5e-5)
    assert float(schedule(55)) == pytest.approx(2.5e-5)
    # The optimizer applies the schedule: the rate of its first update is schedule(0).
    variable = tf.Variable([1.0])
    optimizer.apply_gradients([(tf.constant([0.5]), variable)])
    assert float(optimizer.learning_rate) == pytest.approx(reference_lr(0, 5e-5, 10, 100))
