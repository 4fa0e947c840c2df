"""Behaviour of ``keras_ssl.augment``: exact op semantics, per-sample randomness, crop statistics
against a NumPy reference of torchvision's sampler, and identical draws in eager, ``tf.function``,
``tf.data`` and XLA (and one or two ``MirroredStrategy`` replicas)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_ssl import augment as A
from keras_ssl.backend import tf

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
ZERO_STEP = np.zeros([3], np.int64)  # the step of a fresh op's first call


def rand_images(batch=4, size=32, channels=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.random([batch, size, size, channels]).astype(np.float32)
    return (x * 255).round().astype(np.uint8) if dtype == np.uint8 else x


def all_ops(channels=3, seed=1):
    """One of each op (probabilities 1 where it makes the op visible) and the presets."""
    return {
        "crop": A.RandomResizedCrop(24, seed=seed),
        "flip": A.RandomFlip(p=1.0, seed=seed),
        "jitter": A.ColorJitter(p=1.0, seed=seed),
        "gray": A.RandomGrayscale(p=1.0, seed=seed),
        "blur": A.GaussianBlur(p=1.0, kernel_size=7, seed=seed),
        "solarize": A.Solarize(p=1.0, seed=seed),
        "simclr": A.simclr(32, blur=True, seed=seed),
        "moco_v2": A.moco_v2(32, seed=seed),
        "byol2": A.byol(32, seed=seed)[1],
    }


def clone(op):
    """A fresh op with the same config (same seed, state at step 0)."""
    return type(op).from_config(op.get_config())


# --------------------------------------------------------------------------------------------
# Contract: shapes, dtypes, range, uint8, channels


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_output_contract(channels, dtype):
    x = rand_images(4, 32, channels, dtype=dtype)
    x_float = x.astype(np.float32) / 255.0 if dtype == np.uint8 else x
    for name, op in all_ops(channels).items():
        y = op(x)
        size = 24 if name == "crop" else 32
        assert y.shape == (4, size, size, channels) and y.dtype == tf.float32, name
        assert float(tf.reduce_min(y)) >= 0.0 and float(tf.reduce_max(y)) <= 1.0, name
        if dtype == np.uint8:  # uint8 input is the float input / 255; one image [H, W, C] works too
            np.testing.assert_allclose(clone(op)(x_float).numpy(), y.numpy(), atol=1e-6, err_msg=name)
            assert clone(op)(x[0]).shape == (size, size, channels), name
    if channels == 1:  # colour ops are the identity on one channel
        for op in (A.RandomGrayscale(p=1.0), A.ColorJitter(0, 0, 0.8, 0.4, p=1.0)):
            np.testing.assert_array_equal(op(x_float).numpy(), x_float)


def test_rejects_bad_input():
    with pytest.raises(TypeError):
        A.RandomFlip()(np.zeros([2, 4, 4, 3], np.int32))
    with pytest.raises(ValueError):
        A.RandomFlip()(np.zeros([4, 4], np.float32))
    with pytest.raises(ValueError):
        A.RandomResizedCrop(8, scale=(0.5, 0.2))


# --------------------------------------------------------------------------------------------
# Randomness: per sample, per call, seeded


def test_per_sample_and_per_call_randomness():
    same = np.repeat(rand_images(1, 32), 8, axis=0)  # eight copies of one image
    crop = A.RandomResizedCrop(16, seed=5)
    first, second = crop(same).numpy(), crop(same).numpy()
    flat = first.reshape(8, -1)
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(8) for j in range(i)) > 1e-3
    assert np.abs(first - second).reshape(8, -1).max(axis=1).min() > 1e-3  # every image, every call
    boxes = crop.sample_crops(8, 32, 32).numpy()
    assert len(np.unique(boxes.round(4), axis=0)) == 8


def test_seeded_reproducibility():
    x = rand_images(4, 64)
    a, b, c = A.simclr(64, seed=11), A.simclr(64, seed=11), A.simclr(64, seed=12)
    outs_a = [a(x).numpy() for _ in range(3)]
    outs_b = [b(x).numpy() for _ in range(3)]
    for ya, yb in zip(outs_a, outs_b):
        np.testing.assert_array_equal(ya, yb)
    assert np.abs(outs_a[0] - outs_a[1]).max() > 0.1  # fresh draws at each call
    assert np.abs(c(x).numpy() - outs_a[0]).max() > 0.1
    assert np.abs(A.RandomResizedCrop(16)(x).numpy() - A.RandomResizedCrop(16)(x).numpy()).max() > 1e-3
    # The config round-trip rebuilds the same pipeline.
    rebuilt = A.Compose.from_config(json.loads(json.dumps(a.get_config())))
    np.testing.assert_array_equal(rebuilt(x).numpy(), outs_a[0])


# --------------------------------------------------------------------------------------------
# RandomResizedCrop


def reference_crops(n, height, width, scale, ratio, rng):
    """torchvision's RandomResizedCrop.get_params without integer rounding, in NumPy."""
    out = np.empty([n, 4])
    area = height * width
    for i in range(n):
        for _ in range(10):
            s = rng.uniform(*scale) * area
            r = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            w, h = math.sqrt(s * r), math.sqrt(s / r)
            if w <= width and h <= height:
                out[i] = rng.uniform() * (height - h), rng.uniform() * (width - w), h, w
                break
        else:
            in_ratio = width / height
            w = height * ratio[1] if in_ratio > ratio[1] else width
            h = width / ratio[0] if in_ratio < ratio[0] else height
            out[i] = (height - h) / 2, (width - w) / 2, h, w
    return out


def ks_two_sample(a, b):
    """Kolmogorov-Smirnov statistic and its 1e-6 critical value (values rounded to 1e-4: the
    fallback crops are a point mass, float32 here and float64 in the reference)."""
    a, b = (np.sort(np.round(np.asarray(v, np.float64), 4)) for v in (a, b))
    grid = np.concatenate([a, b])
    d = np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max()
    n, m = len(a), len(b)
    return d, math.sqrt(-0.5 * math.log(1e-6 / 2)) * math.sqrt((n + m) / (n * m))


@pytest.mark.parametrize("height,width,scale", [(32, 32, (0.08, 1.0)), (24, 64, (0.2, 1.0))])
def test_crop_distribution_matches_torchvision(height, width, scale):
    ratio = (3 / 4, 4 / 3)
    n = 20000
    crops = A.RandomResizedCrop(16, scale=scale, ratio=ratio, seed=3).sample_crops(n, height, width).numpy()
    top, left, h, w = crops.T
    area, aspect = h * w / (height * width), w / h
    fallback = np.isclose(h, min(height, width / ratio[0])) & np.isclose(top, (height - h) / 2, atol=1e-4)
    assert np.all(top >= 0) and np.all(left >= 0)
    assert np.all(top + h <= height + 1e-3) and np.all(left + w <= width + 1e-3)
    ok = ~fallback
    assert np.all(area[ok] >= scale[0] - 1e-5) and np.all(area[ok] <= scale[1] + 1e-5)
    assert np.all(aspect[ok] >= ratio[0] - 1e-4) and np.all(aspect[ok] <= ratio[1] + 1e-4)
    assert aspect.min() < ratio[0] + 0.01 and aspect.max() > ratio[1] - 0.01  # the whole range is used
    ref = reference_crops(n, height, width, scale, ratio, np.random.default_rng(0))
    ref_area = ref[:, 2] * ref[:, 3] / (height * width)
    ref_aspect = ref[:, 3] / ref[:, 2]
    ref_position = ref[:, 0] / np.maximum(height - ref[:, 2], 1e-6)
    position = top / np.maximum(height - h, 1e-6)
    for ours, theirs, what in [(area, ref_area, "area"), (np.log(aspect), np.log(ref_aspect), "log ratio"),
                               (position, ref_position, "position")]:
        d, limit = ks_two_sample(ours, theirs)
        assert d < limit, f"{what}: KS {d:.4f} >= {limit:.4f}"
    ref_fallback = np.isclose(ref[:, 2], min(height, width / ratio[0]))
    ref_fallback &= np.isclose(ref[:, 0], (height - ref[:, 2]) / 2)
    rate = (fallback.mean() + ref_fallback.mean()) / 2
    assert abs(fallback.mean() - ref_fallback.mean()) <= 5 * math.sqrt(2 * rate * (1 - rate) / n) + 1e-9


@pytest.mark.parametrize("method", ["crop_and_resize", "gather"])
def test_full_crop_is_identity_resize(method):
    x = rand_images(3, 32)
    same = A.RandomResizedCrop(32, scale=(1, 1), ratio=(1, 1), method=method)
    np.testing.assert_array_equal(same(x).numpy(), x)
    smaller = A.RandomResizedCrop((20, 24), scale=(1, 1), ratio=(1, 1), method=method)
    ref = tf.compat.v1.image.resize_bilinear(x, (20, 24), align_corners=True).numpy()
    np.testing.assert_allclose(smaller(x).numpy(), ref, atol=1e-6)
    np.testing.assert_allclose(smaller(x, training=False).numpy(), ref, atol=1e-6)


def test_crop_methods_agree():
    x = rand_images(16, 48)
    a = A.RandomResizedCrop(40, method="crop_and_resize", seed=9)
    b = A.RandomResizedCrop(40, method="gather", seed=9)
    np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Exact op semantics


def test_flip_exact():
    x = rand_images(200, 8)
    np.testing.assert_array_equal(A.RandomFlip(p=1.0)(x).numpy(), x[:, :, ::-1])
    np.testing.assert_array_equal(A.RandomFlip(horizontal=False, vertical=True, p=1.0)(x).numpy(), x[:, ::-1])
    np.testing.assert_array_equal(A.RandomFlip(p=0.0)(x).numpy(), x)
    y = A.RandomFlip(p=0.5, seed=2)(x).numpy()
    flipped = np.all(y == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(y == x, axis=(1, 2, 3)))
    assert abs(flipped.mean() - 0.5) < 5 * math.sqrt(0.25 / 200)


def test_grayscale_luma():
    x = rand_images(300, 8)
    y = A.RandomGrayscale(p=1.0)(x).numpy()
    luma = (x * LUMA).sum(-1)
    for c in range(3):
        np.testing.assert_allclose(y[..., c], luma, atol=1e-6)
    # tf.image rounds the coefficients to (0.2989, 0.5870, 0.1140).
    np.testing.assert_allclose(y[..., :1], tf.image.rgb_to_grayscale(x).numpy(), atol=2e-4)
    z = A.RandomGrayscale(p=0.2, seed=4)(x).numpy()
    gray = np.all(np.abs(z - luma[..., None]) < 1e-6, axis=(1, 2, 3))
    assert np.all(gray | np.all(z == x, axis=(1, 2, 3)))
    assert abs(gray.mean() - 0.2) < 5 * math.sqrt(0.16 / 300)


def test_brightness_contrast_hand_computed():
    const = np.full([3, 4, 4, 3], 0.5, np.float32)
    factor = tf.constant([0.6, 1.0, 1.4])
    brightened = A.adjust_brightness(const, factor).numpy()
    np.testing.assert_allclose(brightened[:, 0, 0, 0], [0.3, 0.5, 0.7], atol=1e-6)
    np.testing.assert_allclose(A.adjust_contrast(const, factor).numpy(), const, atol=1e-6)  # mean = value
    # Half the pixels (0.2, 0.4, 0.6), half (0.8, 0.8, 0.8): mean luma m = (0.4 * 0.299 ... ) / 2.
    two = np.zeros([3, 2, 2, 3], np.float32)
    two[:, 0], two[:, 1] = [0.2, 0.4, 0.6], 0.8
    m = (0.2 * 0.299 + 0.4 * 0.587 + 0.6 * 0.114 + 0.8) / 2
    f = factor.numpy()[:, None, None, None]
    expected = np.clip(f * two + (1 - f) * m, 0, 1)
    np.testing.assert_allclose(A.adjust_contrast(two, factor).numpy(), expected, atol=1e-6)
    # Through ColorJitter: factors are 0.6 + 0.8 u, with u the op's first-call draws.
    jitter = A.ColorJitter(brightness=0.4, contrast=0, saturation=0, hue=0, p=1.0, seed=7)
    u = jitter.uniform(3, ZERO_STEP, 9).numpy()
    np.testing.assert_allclose(jitter(const).numpy()[:, 0, 0, 0], np.clip(0.5 * (0.6 + 0.8 * u[:, 1]), 0, 1),
                               atol=1e-6)


def test_saturation_hue_match_references():
    x = rand_images(4, 16)
    delta = np.array([0.3, -0.1, 0.05, -0.45], np.float32)
    for i in range(4):
        ref = tf.image.adjust_hue(x[i], float(delta[i])).numpy()
        np.testing.assert_allclose(A.adjust_hue(x, delta).numpy()[i], ref, atol=1e-5)
    f = np.array([0.0, 0.5, 1.0, 1.5], np.float32)
    gray = (x * LUMA).sum(-1, keepdims=True)
    expected = np.clip(f[:, None, None, None] * x + (1 - f[:, None, None, None]) * gray, 0, 1)
    np.testing.assert_allclose(A.adjust_saturation(x, f).numpy(), expected, atol=1e-6)


def test_jitter_random_order_and_probability():
    x = rand_images(64, 8)
    jitter = A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0, hue=0, p=1.0, seed=3)
    y = jitter(x).numpy()
    u = jitter.uniform(64, ZERO_STEP, 9)
    b, c = 0.6 + 0.8 * u[:, 1], 0.6 + 0.8 * u[:, 2]
    bc = A.adjust_contrast(A.adjust_brightness(x, b), c).numpy()
    cb = A.adjust_brightness(A.adjust_contrast(x, c), b).numpy()
    is_bc = np.abs(y - bc).max(axis=(1, 2, 3)) < 1e-6
    is_cb = np.abs(y - cb).max(axis=(1, 2, 3)) < 1e-6
    assert np.all(is_bc | is_cb) and 10 < is_bc.sum() < 54  # both orders occur
    z = A.ColorJitter(p=0.8, seed=8)(rand_images(400, 4)).numpy()
    kept = np.all(z == rand_images(400, 4), axis=(1, 2, 3))
    assert abs(kept.mean() - 0.2) < 5 * math.sqrt(0.16 / 400)


@pytest.mark.parametrize("channels", [1, 3])
def test_jitter_partition_and_select_agree(channels):
    from keras_ssl.augment.ops import _adjust_one_of

    x = tf.constant(rand_images(32, 8, channels))
    kinds = ["brightness", "contrast", "saturation", "hue"][: 4 if channels == 3 else 2]
    rng = np.random.default_rng(1)
    params = [tf.constant(rng.uniform(0.5, 1.5, 32), tf.float32) for _ in kinds[:3]]
    params += [tf.constant(rng.uniform(-0.3, 0.3, 32), tf.float32)] if channels == 3 else []
    which = tf.constant(rng.integers(0, len(kinds), 32), tf.int32)
    split = _adjust_one_of(x, kinds, params, which, partition=True).numpy()
    select = _adjust_one_of(x, kinds, params, which, partition=False).numpy()
    np.testing.assert_allclose(split, select, atol=1e-6)
    for i in range(32):  # and each image got exactly its own adjustment
        j = int(which[i])
        own = getattr(A, f"adjust_{kinds[j]}")(x[i : i + 1], params[j][i : i + 1]).numpy()[0]
        np.testing.assert_allclose(split[i], own, atol=1e-6)


def test_solarize_exact():
    values = np.array([0.0, 0.25, 0.49, 0.5, 0.75, 1.0], np.float32)
    x = np.tile(values[None, :, None, None], [2, 1, 1, 3])
    np.testing.assert_allclose(A.Solarize(p=1.0)(x).numpy()[0, :, 0, 0], [0.0, 0.25, 0.49, 0.5, 0.25, 0.0])
    np.testing.assert_array_equal(A.Solarize(p=0.0)(x).numpy(), x)


def numpy_blur(x, sigma, radius):
    t = np.arange(-radius, radius + 1)
    out = np.empty_like(x)
    for i, s in enumerate(sigma):
        k = np.exp(-t**2 / (2 * s**2))
        k /= k.sum()
        p = np.pad(x[i], [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
        rows = sum(k[j] * p[j : j + x.shape[1]] for j in range(len(t)))
        out[i] = sum(k[j] * rows[:, j : j + x.shape[2]] for j in range(len(t)))
    return out


@pytest.mark.parametrize("method", ["depthwise", "shifts"])
def test_blur_reference_mean_and_variance(method):
    noise = rand_images(3, 24, channels=2)
    sigma = np.array([0.3, 1.0, 2.0], np.float32)
    out = A.gaussian_blur(tf.constant(noise), tf.constant(sigma), 3, method).numpy()
    np.testing.assert_allclose(out, numpy_blur(noise, sigma, 3), atol=1e-5)
    assert np.all(np.diff(out.var(axis=(1, 2, 3))) < 0) and out[2].var() < 0.25 * noise[2].var()
    const = np.full([3, 24, 24, 2], 0.3, np.float32)
    np.testing.assert_allclose(A.gaussian_blur(const, sigma, 3, method).numpy(), const, atol=1e-6)
    op = A.GaussianBlur(p=1.0, seed=1, method=method)  # radius = (24 // 10) // 2 = 1
    np.testing.assert_allclose(op(const).numpy(), const, atol=1e-6)
    assert op(noise).numpy().var() < noise.var()


# --------------------------------------------------------------------------------------------
# Graph modes: tf.function, tf.data, XLA, training flag, strategies


def test_tf_function_traced_once_fresh_draws():
    aug = A.simclr(32, seed=1)
    eager = A.simclr(32, seed=1)
    fn = tf.function(lambda x: aug(x))
    x = rand_images(4, 32)
    outs = [fn(x).numpy()]
    traces = fn.experimental_get_tracing_count()  # the first call may trace twice (it creates state)
    outs += [fn(x).numpy() for _ in range(2)]
    assert fn.experimental_get_tracing_count() == traces
    assert np.abs(outs[0] - outs[1]).max() > 0.1 and np.abs(outs[1] - outs[2]).max() > 0.1
    for y in outs:  # the same sequence as eager calls of the same seed
        np.testing.assert_allclose(y, eager(x).numpy(), atol=1e-5)


def test_training_flag():
    x = rand_images(2, 32)
    for name, op in all_ops().items():
        y = op(x, training=False).numpy()
        if name == "crop":
            np.testing.assert_allclose(y, tf.compat.v1.image.resize_bilinear(x, (24, 24), align_corners=True),
                                       atol=1e-6)
        else:
            np.testing.assert_array_equal(y, x)
    flip = A.RandomFlip(p=1.0)
    fn = tf.function(lambda x, training: flip(x, training=training))
    np.testing.assert_array_equal(fn(x, tf.constant(True)).numpy(), x[:, :, ::-1])
    np.testing.assert_array_equal(fn(x, tf.constant(False)).numpy(), x)


def test_tf_data_map():
    def pipeline():
        return A.Compose([A.RandomResizedCrop(32, seed=2), A.RandomFlip(seed=3),
                          A.RandomGrayscale(p=0.5, seed=4), A.Solarize(p=0.5, seed=5)])

    x = rand_images(8, 32, dtype=np.uint8)
    aug = pipeline()
    batched = tf.data.Dataset.from_tensor_slices(x).batch(4).map(aug)
    epoch1, epoch2 = [np.concatenate(list(batched.as_numpy_iterator())) for _ in range(2)]
    assert epoch1.shape == (8, 32, 32, 3) and epoch1.dtype == np.float32
    assert np.abs(epoch1 - epoch2).reshape(8, -1).max(axis=1).min() > 1e-3  # fresh views each epoch
    reference = pipeline()  # sequential map: the same draws as eager calls, batch by batch
    np.testing.assert_allclose(epoch1, np.concatenate([reference(x[:4]), reference(x[4:])]), atol=1e-5)
    crop = A.RandomResizedCrop(16, seed=3)  # unbatched, parallel: atomic steps, no two images alike
    same = tf.data.Dataset.from_tensor_slices(np.repeat(x[:1], 8, axis=0))
    views = np.stack(list(same.map(crop, num_parallel_calls=4).as_numpy_iterator()))
    flat = views.reshape(8, -1)
    assert min(np.abs(flat[i] - flat[j]).max() for i in range(8) for j in range(i)) > 1e-3


def test_xla_matches_eager():
    # BYOL's second view holds every op: crop (gather path), flip, jitter, grayscale, blur (shift
    # path), solarize. Compiled, it must give the eager numbers of the same seed, call after call.
    view, twin = A.byol(64, seed=5)[1], A.byol(64, seed=5)[1]
    x = rand_images(4, 64)
    fn = tf.function(lambda images: view(images), jit_compile=True)
    outs = [fn(x).numpy() for _ in range(2)]
    for y in outs:
        np.testing.assert_allclose(y, twin(x).numpy(), atol=2e-5)
    assert np.abs(outs[0] - outs[1]).max() > 0.1


def small_pipeline(seed):
    return A.Compose([A.RandomResizedCrop(16, seed=seed), A.Solarize(p=0.5, seed=seed + 1)])


def test_default_and_one_device_strategy():
    x = rand_images(8, 32)
    reference = small_pipeline(4)
    default = tf.distribute.get_strategy()
    aug = small_pipeline(4)
    fn = tf.function(lambda: default.run(aug, args=(x,)))
    for _ in range(2):
        np.testing.assert_allclose(fn().numpy(), reference(x).numpy(), atol=1e-5)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        aug = small_pipeline(4)
    fn = tf.function(lambda: strategy.run(aug, args=(x,)))
    reference = small_pipeline(4)
    for _ in range(2):
        np.testing.assert_allclose(fn().numpy(), reference(x).numpy(), atol=1e-5)


MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np
    from keras_ssl.backend import tf
    from keras_ssl import augment as A
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    x = np.random.default_rng(0).random([8, 32, 32, 3]).astype(np.float32)
    def pipeline():
        return A.Compose([A.RandomResizedCrop(16, seed=6), A.RandomFlip(seed=7), A.Solarize(p=0.5, seed=8)])
    single = pipeline()
    one = [single(x).numpy() for _ in range(2)]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    aug = pipeline()  # created outside the scope: its state is created on the first run
    halves = [tf.constant(x[:4]), tf.constant(x[4:])]
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: halves[ctx.replica_id_in_sync_group])
    step = tf.function(lambda v: strategy.run(aug, args=(v,)))
    two = [np.concatenate([t.numpy() for t in strategy.experimental_local_results(step(values))])
           for _ in range(2)]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "state": type(aug.ops[0].rng_state).__name__,
                      "diff": [float(np.abs(a - b).max()) for a, b in zip(one, two)],
                      "calls_differ": float(np.abs(two[0] - two[1]).max())}))
""")


def test_two_mirrored_replicas_match_one():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["state"] == "MirroredVariable"
    assert max(result["diff"]) < 1e-5  # replica r draws for global samples r * 4 .. r * 4 + 3
    assert result["calls_differ"] > 0.1


# --------------------------------------------------------------------------------------------
# Presets and the grid


def test_presets_follow_the_papers():
    def kinds(compose):
        return [type(op).__name__ for op in compose.ops]

    assert kinds(A.simclr(32)) == ["RandomResizedCrop", "RandomFlip", "ColorJitter", "RandomGrayscale"]
    strong = A.simclr(224, strength=0.5)
    assert kinds(strong)[-1] == "GaussianBlur" and strong.ops[-1].p == 0.5
    jitter = strong.ops[2].get_config()
    assert (jitter["brightness"], jitter["hue"], jitter["p"]) == (0.4, 0.1, 0.8)
    assert strong.ops[-1].radius(224) == 11  # 23 taps, 10% of the side
    assert A.simclr(32, blur=True).ops[-1].p == 0.5
    moco = A.moco_v2(224)
    assert moco.ops[0].scale == (0.2, 1.0) and kinds(moco)[3] == "GaussianBlur" and moco.ops[3].p == 0.5
    view1, view2 = A.byol(96)
    assert [op.p for op in view1.ops if isinstance(op, A.GaussianBlur)] == [1.0]
    assert [op.p for op in view2.ops if isinstance(op, (A.GaussianBlur, A.Solarize))] == [0.1, 0.2]
    assert not any(isinstance(op, A.Solarize) for op in view1.ops)
    assert view1.ops[2].get_config()["saturation"] == 0.2 and view1.ops[3].p == 0.2


def test_render_views_png(tmp_path):
    from PIL import Image

    x = rand_images(10, 32, dtype=np.uint8)
    path = str(tmp_path / "views.png")
    grid = A.render_views(x, A.simclr(24, seed=1), n_images=3, n_views=4, path=path)
    assert grid.shape == (3 * 24, 5 * 24, 3) and grid.dtype == np.uint8
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (5 * 24, 3 * 24)
        np.testing.assert_array_equal(np.asarray(image), grid)
    pair = A.render_views(x[..., :1], A.byol(32, seed=1), n_images=2, n_views=2)
    assert pair.shape == (2 * 32, 3 * 32, 3)
    np.testing.assert_array_equal(pair[:32, :32], np.repeat(x[0, :, :, :1], 3, axis=-1))  # original column
