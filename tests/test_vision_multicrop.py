"""Multi-crop views (``augment.multi_crop``) and the multi-view contract of ``VisionSSLModel``.

The views: shapes and attributes, independent per-sample and per-view draws, crop areas inside the
preset's scale ranges (the crops a view samples are the crops it shows), the same views eagerly and
under XLA, on one replica and on two, and counters that a checkpoint restores. The base: multi-view
methods get every view (a MultiCrop's, or two of a plain augmentation), one encoder call per
resolution, every view's batch size checked, and clear errors for two-view methods given a MultiCrop
and for encoders with a fixed input size. The config: ``get_config``/``from_config`` rebuild the same views
(presets and pipelines of augment ops, shared pipelines kept shared) and refuse what they cannot describe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numerics import VALUE_RTOL, assert_close_to_scale

from keras_ssl import augment as A
from keras_ssl.augment.ops import crop_and_resize
from keras_ssl.backend import keras, tf
from keras_ssl.vision.backbones import small_cnn
from keras_ssl.vision.base import Views, VisionSSLModel

ZERO_STEP = np.zeros([3], np.int64)  # the step of a fresh op's first call


def rand_images(batch=4, size=32, channels=1, seed=0):
    return np.random.default_rng(seed).random([batch, size, size, channels]).astype(np.float32)


def test_shapes_and_attributes():
    mc = A.multi_crop(32, 16, num_global=2, num_local=3, seed=0)
    assert (mc.num_global, mc.num_local, mc.global_size, mc.local_size) == (2, 3, 32, 16)
    views = mc(rand_images(4, 40, channels=3))
    assert [tuple(v.shape) for v in views] == [(4, 32, 32, 3)] * 2 + [(4, 16, 16, 3)] * 3
    for v in views:
        assert v.dtype == tf.float32 and 0.0 <= float(tf.reduce_min(v)) and float(tf.reduce_max(v)) <= 1.0
    uint8 = (rand_images(2, 28) * 255).astype(np.uint8)
    assert [tuple(v.shape) for v in A.multi_crop(28, 12, num_local=1, seed=0)(uint8)] == \
        [(2, 28, 28, 1)] * 2 + [(2, 12, 12, 1)]
    assert len(A.multi_crop(16, 8, num_local=0)(rand_images(2, 16))) == 2  # globals only


def test_presets_follow_the_papers():
    swav, dino = A.multi_crop(seed=0), A.multi_crop.dino(seed=0)
    crops = [p.ops[0] for p in swav.global_views + swav.local_views]
    assert [c.scale for c in crops] == [(0.14, 1.0)] * 2 + [(0.05, 0.14)] * 4
    jitter = swav.global_views[0].ops[2].get_config()
    assert (jitter["brightness"], jitter["hue"], jitter["p"]) == (0.8, 0.2, 0.8)
    assert [c.scale for c in (dino.global_views[0].ops[0], dino.local_views[0].ops[0])] == [(0.4, 1.0),
                                                                                           (0.05, 0.4)]
    big = A.multi_crop.dino(224, 96, num_local=2, seed=0)  # blur from 64 px: 1.0 / 0.1 / 0.5; solarize 0.2

    def p_of(pipeline, kind):
        return [op.p for op in pipeline.ops if type(op).__name__ == kind]

    assert [p_of(v, "GaussianBlur") for v in big.global_views + big.local_views] == [[1.0], [0.1], [0.5],
                                                                                    [0.5]]
    assert [p_of(v, "Solarize") for v in big.global_views + big.local_views] == [[], [0.2], [], []]
    same = A.multi_crop(preset="dino", seed=0)
    assert same.global_views[1].ops[0].scale == (0.4, 1.0) and p_of(same.global_views[1], "Solarize") == [0.2]
    seeds = {op.seed for p in swav.global_views + swav.local_views for op in p.ops}
    assert len(seeds) == sum(len(p.ops) for p in swav.global_views + swav.local_views)  # every op its own


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="local_size .* larger than global_size"):
        A.multi_crop(16, 24)
    with pytest.raises(ValueError, match="local_size .* larger than global_size"):
        A.MultiCrop(A.RandomResizedCrop(8), A.RandomResizedCrop(12), 2, 2)
    with pytest.raises(ValueError, match="num_global"):
        A.multi_crop(num_global=0)
    with pytest.raises(ValueError, match="num_local"):
        A.MultiCrop(A.RandomResizedCrop(8), None, 1, -1)
    with pytest.raises(ValueError, match="one per view"):
        A.MultiCrop([A.RandomResizedCrop(8)], None, 2, 0)
    with pytest.raises(ValueError, match="preset"):
        A.multi_crop(preset="byol")


def test_per_sample_and_per_view_randomness():
    same = np.repeat(rand_images(1, 32), 8, axis=0)  # eight copies of one image
    mc = A.multi_crop(32, 16, num_local=2, seed=3)
    first, second = mc(same), mc(same)
    for view in first:
        flat = view.numpy().reshape(8, -1)
        assert min(np.abs(flat[i] - flat[j]).max() for i in range(8) for j in range(i)) > 1e-3
    for a, b in zip(first, first[1:]):  # the views of one image differ from each other...
        if a.shape == b.shape:
            assert np.abs(a.numpy() - b.numpy()).reshape(8, -1).max(axis=1).min() > 1e-3
    for a, b in zip(first, second):  # ...and from call to call
        assert np.abs(a.numpy() - b.numpy()).reshape(8, -1).max(axis=1).min() > 1e-3
    replay = A.multi_crop(32, 16, num_local=2, seed=3)(same)
    for a, b in zip(first, replay):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_views_show_their_crops_and_areas_lie_in_the_scale_ranges():
    """Each view is its crop op's sampled crop, resized; crop areas (fraction of the image) fill the
    preset's range: SwAV's 0.14-1 / 0.05-0.14, DINO's 0.4-1 / 0.05-0.4."""
    x = rand_images(6, 32)
    mc = A.multi_crop(32, 16, num_global=1, num_local=1, seed=7)
    mc.build_state()
    views = mc(x)
    for view, pipeline in zip(views, mc.global_views + mc.local_views):
        crop = pipeline.ops[0]
        boxes = crop.sample_crops(6, 32, 32, step=tf.constant(ZERO_STEP))
        expected = crop_and_resize(tf.constant(x), boxes, crop.size)
        flipped = tf.reverse(expected, axis=[2])  # the flip that follows may have mirrored it
        error = np.minimum(np.abs(view.numpy() - expected.numpy()).reshape(6, -1).max(axis=1),
                           np.abs(view.numpy() - flipped.numpy()).reshape(6, -1).max(axis=1))
        colour = pipeline.ops[2]  # jitter changes intensities: compare where it did not fire
        fired = colour.uniform(6, tf.constant(ZERO_STEP), 1).numpy()[:, 0] < colour.p
        assert np.all(error[~fired] < 1e-5), error
    for preset, ranges in ((A.multi_crop, [(0.14, 1.0), (0.05, 0.14)]),
                           (A.multi_crop.dino, [(0.4, 1.0), (0.05, 0.4)])):
        mc = preset(32, 16, num_global=1, num_local=1, seed=1)
        for pipeline, (lo, hi) in zip(mc.global_views + mc.local_views, ranges):
            boxes = pipeline.ops[0].sample_crops(4000, 32, 32).numpy()
            area = boxes[:, 2] * boxes[:, 3] / (32 * 32)
            assert area.min() >= lo * (1 - 1e-5) and area.max() <= hi * (1 + 1e-5), (lo, hi)
            assert area.min() < lo + 0.02 * (hi - lo) and area.max() > hi - 0.02 * (hi - lo), (lo, hi)
            if hi * 4 / 3 <= 1:  # every attempt fits: the area is uniform in the range (torchvision)
                assert abs(np.median(area) - (lo + hi) / 2) < 0.05 * (hi - lo), (lo, hi, np.median(area))


def test_xla_matches_eager():
    x = rand_images(4, 32)
    mc, twin = (A.multi_crop(32, 16, num_global=1, num_local=1, seed=5) for _ in range(2))
    fn = tf.function(lambda images: mc(images), jit_compile=True)
    for _ in range(2):  # compiled draws equal the eager ones of the same seed, call after call
        for compiled, eager in zip(fn(x), twin(x)):
            assert_close_to_scale(compiled.numpy(), eager.numpy(), what="XLA vs eager")


def test_counters_are_checkpointed(tmp_path):
    x = rand_images(4, 32)
    mc = A.multi_crop(32, 16, num_local=2, seed=2)
    mc(x)
    path = tf.train.Checkpoint(augment=mc).write(str(tmp_path / "ckpt"))
    after = [v.numpy() for v in mc(x)]
    restored = A.multi_crop(32, 16, num_local=2, seed=2)
    restored.build_state()
    tf.train.Checkpoint(augment=restored).read(path).assert_consumed()
    for a, b in zip(after, restored(x)):
        np.testing.assert_array_equal(a, b.numpy())
    assert len(mc.variables) == 4 * 4  # one counter per op (crop, flip, jitter, grayscale) per view


MIRRORED = textwrap.dedent("""
    import json
    import numpy as np
    from keras_ssl.backend import tf
    from keras_ssl import augment as A
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    x = np.random.default_rng(0).random([8, 32, 32, 1]).astype(np.float32)
    single = A.multi_crop(32, 16, num_local=1, seed=6)
    one = [[v.numpy() for v in single(x)] for _ in range(2)]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mc = A.multi_crop(32, 16, num_local=1, seed=6)
        mc.build_state()
    halves = [tf.constant(x[:4]), tf.constant(x[4:])]
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: halves[ctx.replica_id_in_sync_group])
    step = tf.function(lambda v: strategy.run(mc, args=(v,)))
    two = []
    for _ in range(2):
        out = step(values)
        two.append([np.concatenate([t.numpy() for t in strategy.experimental_local_results(v)]) for v in out])
    print(json.dumps({"state": type(mc.global_views[0].ops[0].rng_state).__name__,
                      "diff": max(float(np.abs(a - b).max()) for o, t in zip(one, two) for a, b in zip(o, t)),
                      "calls_differ": min(float(np.abs(a - b).max()) for a, b in zip(two[0], two[1]))}))
""")


def test_two_mirrored_replicas_match_one():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)
    assert result["state"] == "MirroredVariable"
    # Replica r draws the views of global samples 4 r .. 4 r + 3 (values in [0, 1]: float rounding).
    assert result["diff"] < VALUE_RTOL
    assert result["calls_differ"] > 0.1


def test_render_views_shows_globals_and_padded_locals():
    x = (rand_images(5, 32) * 255).astype(np.uint8)
    grid = A.render_views(x, A.multi_crop(32, 16, num_local=3, seed=1), n_images=2)
    assert grid.shape == (2 * 32, (1 + 2 + 3) * 32, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:32, :32], np.repeat(x[0], 3, axis=-1))  # the original
    local = grid[:32, 3 * 32:4 * 32]  # the first local crop, centred in a white 32x32 cell
    assert np.all(local[:8] == 255) and np.all(local[:, :8] == 255) and np.all(local[24:] == 255)
    assert not np.all(local[8:24, 8:24] == 255)


# --------------------------------------------------------------------------------------------
# The multi-view contract of VisionSSLModel


class _AllViews(VisionSSLModel):
    """A minimal multi-view method: mean squared feature of every view; records what it was given."""

    multi_view = True

    def multi_view_loss(self, views, num_global, training):
        self.seen = ([tuple(v.shape) for v in views], num_global)
        features = self.encode_views(views, training)
        loss = tf.add_n([tf.reduce_mean(tf.square(f)) for f in features]) / len(features)
        return loss, {"embedding_std": tf.constant(1.0)}


class _Counting(keras.Model):
    def __init__(self, encoder):
        super().__init__()
        self.encoder, self.batches = encoder, []

    def call(self, x, training=False):
        self.batches.append(tuple(x.shape))
        return self.encoder(x, training=training)


@pytest.fixture(scope="module")
def any_size_encoder():
    keras.utils.set_random_seed(0)
    return small_cnn((None, None, 1), width=4)


def test_multi_view_methods_get_every_view(any_size_encoder):
    x = rand_images(4, 32)
    model = _AllViews(any_size_encoder, augment=A.multi_crop(32, 16, num_local=3, seed=0))
    views = model.pretext(x, training=True)
    assert isinstance(views, Views) and views.num_global == 2 and len(views.views) == 5
    model.compute_loss_and_stats(views, training=True)
    assert model.seen == ([(4, 32, 32, 1)] * 2 + [(4, 16, 16, 1)] * 3, 2)
    for augment in (None, A.RandomFlip(seed=0), (A.RandomFlip(seed=0), A.RandomFlip(seed=1))):
        pair = _AllViews(any_size_encoder, augment=augment).pretext(x, training=True)
        assert pair.num_global == 2 and [tuple(v.shape) for v in pair.views] == [(4, 32, 32, 1)] * 2


def test_encode_views_runs_the_encoder_once_per_resolution(any_size_encoder):
    x = rand_images(3, 32)
    model = _AllViews(any_size_encoder, augment=A.multi_crop(32, 16, num_local=3, seed=0))
    views = model.pretext(x, training=True).views
    counting = _Counting(any_size_encoder)
    features = model.encode_views(views, training=False, network=counting)
    assert counting.batches == [(6, 32, 32, 1), (9, 16, 16, 1)]  # globals together, locals together
    for view, feature in zip(views, features):  # the same features as one call per view (inference BN)
        np.testing.assert_allclose(feature.numpy(), any_size_encoder(view, training=False).numpy(),
                                   rtol=1e-5, atol=1e-6 * float(np.abs(feature.numpy()).max()))


def test_batch_size_checked_for_every_view(any_size_encoder):
    model = _AllViews(any_size_encoder, augment=A.multi_crop(32, 16, num_local=1, seed=0))
    with pytest.raises(ValueError, match="at least 2 images"):
        model.compute_loss_and_stats(model.pretext(rand_images(1, 32), training=True), training=True)


def test_two_view_methods_refuse_a_multi_crop(any_size_encoder):
    from keras_ssl import vision

    with pytest.raises(ValueError, match="not a MultiCrop.*SwAV"):
        vision.SimCLR(any_size_encoder, augment=A.multi_crop(32, 16, seed=0))
    with pytest.raises(ValueError, match="not a MultiCrop.*DINO"):
        vision.Autoencoder(any_size_encoder, augment=A.multi_crop(32, 16, seed=0))


def test_fixed_size_encoder_is_refused_with_the_fix():
    fixed = small_cnn((32, 32, 1), width=4)
    with pytest.raises(ValueError, match=r"takes 32x32 images but gets 16x16.*input_shape=\(None, None, C\)"):
        _AllViews(fixed, augment=A.multi_crop(32, 16, seed=0))
    model = _AllViews(fixed, augment=None)  # the same size everywhere is fine...
    with pytest.raises(ValueError, match="takes 32x32 images but gets 16x16"):  # ...until a view is not
        model.encode_views([tf.zeros((2, 32, 32, 1)), tf.zeros((2, 16, 16, 1))], training=False)


# --------------------------------------------------------------------------------------------
# get_config / from_config


def _shared_pipelines():
    """One pipeline object shared by both globals, another by the three locals (the single-callable form)."""
    return A.MultiCrop(A.Compose([A.RandomResizedCrop(16, seed=1), A.RandomStroke(0.3, seed=2)]),
                       A.RandomResizedCrop(8, seed=3), num_global=2, num_local=3)


CONFIG_CASES = {
    "swav": lambda: A.multi_crop(16, 8, num_local=2, seed=3),
    "dino_unseeded": lambda: A.multi_crop.dino(16, 8, num_local=2),
    "dino_by_preset": lambda: A.multi_crop(16, 8, num_local=1, preset="dino", seed=4),
    "digits_pipelines": lambda: A.MultiCrop([A.digits(16, seed=i) for i in range(2)],
                                            [A.digits(8, scale=(0.2, 0.5), max_shift=2, seed=2)],
                                            num_global=2, num_local=1),
    "shared": _shared_pipelines,
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_rebuilds_the_same_views(case, tmp_path):
    """A MultiCrop rebuilt from its JSON'd config, with the original's counters restored from a checkpoint,
    draws exactly the original's next views; the config round-trips unchanged."""
    x = rand_images(3, 16)
    mc = CONFIG_CASES[case]()
    config = mc.get_config()
    if case in ("swav", "dino_unseeded", "dino_by_preset"):  # the factory's arguments, with a concrete seed
        assert config["preset"] == ("swav" if case == "swav" else "dino") and isinstance(config["seed"], int)
    else:
        assert "preset" not in config and config["global_ops"]
    mc(x)  # move the counters on, then save them
    path = tf.train.Checkpoint(augment=mc).write(str(tmp_path / "ckpt"))
    rebuilt = A.MultiCrop.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config and repr(rebuilt) == repr(mc)
    rebuilt.build_state()
    tf.train.Checkpoint(augment=rebuilt).read(path).assert_consumed()
    expected, got = mc(x), rebuilt(x)
    assert len(got) == mc.num_views
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    fresh = A.MultiCrop.from_config(config)(x)  # counters at zero: other draws (the restore mattered)
    assert max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(expected, fresh)) > 1e-3


def test_config_keeps_shared_pipelines_shared():
    rebuilt = A.MultiCrop.from_config(json.loads(json.dumps(_shared_pipelines().get_config())))
    assert rebuilt.global_views[0] is rebuilt.global_views[1]
    assert all(view is rebuilt.local_views[0] for view in rebuilt.local_views)
    views = rebuilt(rand_images(2, 16))  # one object, a fresh step per call: the views of a kind differ
    assert np.abs(views[0].numpy() - views[1].numpy()).max() > 1e-3


def test_config_of_an_edited_preset_describes_its_pipelines():
    mc = A.multi_crop(16, 8, num_local=1, seed=0)
    mc.local_views[0].ops.pop()  # drop the local crop's grayscale: the factory no longer describes it
    config = mc.get_config()
    assert "preset" not in config and len(config["local_ops"][0]["config"]["ops"]) == 3
    x = rand_images(2, 16)
    for a, b in zip(mc(x), A.MultiCrop.from_config(config)(x)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_config_errors_name_the_problem():
    class MyFlip(A.RandomFlip):
        pass

    x_only = A.MultiCrop(A.RandomResizedCrop(16, seed=0), lambda images, training=True: images, 1, 1)
    with pytest.raises(TypeError, match=r"cannot describe local_ops.*not a keras_ssl.augment op.*override"):
        x_only.get_config()
    nested = A.MultiCrop([A.Compose([A.RandomResizedCrop(16, seed=0), MyFlip(seed=1)])], None, 1, 0)
    with pytest.raises(TypeError, match=r"global_ops.*MyFlip"):
        nested.get_config()
    crop = A.RandomResizedCrop(16, seed=0)
    partly = A.MultiCrop([A.Compose([crop]), A.Compose([crop, A.RandomFlip(seed=1)])], None, 2, 0)
    with pytest.raises(ValueError, match=r"by global_ops\[0\] \(op 0\) and global_ops\[1\] .*own pipeline"):
        partly.get_config()
    twice = A.RandomFlip(seed=2)  # rebuilt as two ops of one seed, the same flips: not the original's
    with pytest.raises(ValueError, match=r"shared by global_ops\[0\] \(op 0\) and global_ops\[0\] \(op 1\)"):
        A.MultiCrop([A.Compose([twice, twice])], None, 1, 0).get_config()
    with pytest.raises(ValueError, match="preset must be 'swav' or 'dino'"):
        A.MultiCrop.from_config({**A.multi_crop(seed=0).get_config(), "preset": "byol"})
    with pytest.raises(ValueError, match=r"global_ops\[0\] must be \{'class_name'"):
        A.MultiCrop.from_config({"global_ops": [{"class_name": "Lambda", "config": {}}], "local_ops": None,
                                 "num_global": 1, "num_local": 0})
    with pytest.raises(TypeError, match="takes the dict of MultiCrop.get_config"):
        A.MultiCrop.from_config("swav")
