"""DINO: the loss (pair skipping) and the center update against NumPy, teacher = EMA of the student,
the weight-normalised last layer (norm 1, frozen for the first steps), gradient clipping, collapse
without centering (and HealthMonitor catching it), one vs two replicas with multi-crop, bitwise resume,
export, a Hugging Face ViT encoder, bad input. Mixed precision and jit: test_precision.py."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from numerics import RESUME_RTOL, STEP_RTOL, assert_close_to_scale, close, state_difference
from tiny_vision import TINY_HEADS

from keras_ssl import augment, export_saved_model, losses
from keras_ssl.backend import keras, tf
from keras_ssl.evaluation import CollapseWarning, HealthMonitor
from keras_ssl.vision import DINO
from keras_ssl.vision import heads as H
from keras_ssl.vision.backbones import resnet18_cifar, small_cnn
from keras_ssl.vision.methods._shared import structural_weights

BATCH, SIZE = 8, 8


def _images(seed=0, n=BATCH):
    return np.random.default_rng(seed).random((n, SIZE, SIZE, 1)).astype("float32")


def _model(seed=0, encoder=None, **overrides):
    keras.utils.set_random_seed(seed)
    encoder = encoder or small_cnn((SIZE, SIZE, 1), width=4)
    return DINO(encoder, **{"augment": None, **TINY_HEADS["DINO"](), **overrides})


def _log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _numpy_dino(student, teacher, center, tau_s, tau_t):
    log_t = [_log_softmax((t - center) / tau_t) for t in teacher]
    log_s = [_log_softmax(s / tau_s) for s in student]
    pairs = [(i, j) for i in range(len(teacher)) for j in range(len(student)) if i != j]
    loss = np.mean([-(np.exp(log_t[i]) * log_s[j]).sum(-1) for i, j in pairs], axis=0)
    entropy = np.mean([-(np.exp(lt) * lt).sum(-1) for lt in log_t], axis=0) / np.log(center.shape[-1])
    return loss, entropy


def test_loss_matches_numpy_and_skips_same_view_pairs():
    rng = np.random.default_rng(0)
    student = [rng.normal(size=(5, 7)).astype("float32") for _ in range(4)]  # 2 global + 2 local views
    teacher = [rng.normal(size=(5, 7)).astype("float32") for _ in range(2)]
    center = rng.normal(size=7).astype("float32") * 0.3
    loss, extras = losses.dino_cross_entropy(student, teacher, center, 0.1, 0.04)
    expected, entropy = _numpy_dino(student, teacher, center, 0.1, 0.04)
    assert_close_to_scale(loss.numpy(), expected, what="loss")
    assert_close_to_scale(extras["teacher_entropy"].numpy(), entropy, what="entropy")
    # Six pairs (0,1), (0,2), (0,3), (1,0), (1,2), (1,3); including (0,0), (1,1) gives another value.
    with_same = _numpy_dino(student, teacher, center, 0.1, 0.04)[0] * 6
    log_t = [_log_softmax((t - center) / 0.04) for t in teacher]
    with_same += sum(-(np.exp(log_t[i]) * _log_softmax(student[i] / 0.1)).sum(-1) for i in range(2))
    assert np.max(np.abs(with_same / 8 - expected)) > 100 * np.max(np.abs(loss.numpy() - expected))
    kl = np.mean([(np.exp(log_t[i]) * (log_t[i] - _log_softmax(student[j] / 0.1))).sum(-1)
                  for i in range(2) for j in range(4) if i != j], axis=0)
    assert_close_to_scale(extras["kl_teacher_student"].numpy(), kl, rtol=1e-3, what="kl")


@pytest.fixture(scope="module")
def one_step():
    """A tiny DINO before and after one SGD step (constant momentum 0.9, center momentum 0.9)."""
    model = _model(total_steps=None, momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    images = _images()
    teacher = model.target_projection(model.target_encoder(images, training=True), training=True).numpy()
    student = model.projection(model.encoder(images, training=True), training=True).numpy()
    loss, _ = model.compute_loss_and_stats(model.pretext(images, training=True), training=True)
    online = [w for w in structural_weights(model.encoder) + structural_weights(model.projection)]
    target = structural_weights(model.target_encoder) + structural_weights(model.target_projection)
    target_before = [w.numpy().copy() for w in target]
    direction_before = model.projection.last_layer_direction.numpy().copy()
    model.train_on_batch(images)
    return dict(model=model, teacher=teacher, student=student, loss=float(loss), online=online,
                target=target, target_before=target_before, direction_before=direction_before)


def test_model_loss_and_center_update_match_numpy(one_step):
    model, teacher, student = one_step["model"], one_step["teacher"], one_step["student"]
    center = np.zeros(teacher.shape[-1], np.float32)
    # augment=None: two identical global views, so the loss is the cross of view 0 and view 1.
    expected, _ = _numpy_dino([student, student], [teacher, teacher], center, 0.1, 0.04)
    assert close(one_step["loss"], float(expected.mean()), 1e-4), (one_step["loss"], expected.mean())
    assert_close_to_scale(model.center.numpy(), 0.9 * center + 0.1 * teacher.mean(axis=0), what="center")


def test_teacher_is_the_ema_of_the_student(one_step):
    checked = 0
    for online, target, before in zip(one_step["online"], one_step["target"], one_step["target_before"]):
        if online.trainable:  # BN moving statistics also move in the teacher's own forward pass
            assert_close_to_scale(target.numpy(), 0.9 * before + 0.1 * online.numpy(), what=online.name)
            checked += 1
    assert checked == len(one_step["model"].optimized_variables())


def test_last_layer_has_unit_norm_and_only_its_direction_trains(one_step):
    model = one_step["model"]
    head = model.projection
    direction = head.last_layer_direction.numpy()
    assert np.max(np.abs(direction - one_step["direction_before"])) > 0  # the direction trained
    kernel = head.last_layer_kernel().numpy()
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, rtol=1e-5)
    # Outputs are cosines of the L2-normalised bottleneck with unit columns: |s| <= 1, and scaling the
    # stored direction (what a weight-norm g would do) changes nothing.
    features = model.encoder(_images(3), training=False)
    out = head(features, training=False).numpy()
    assert np.max(np.abs(out)) <= 1.0 + 1e-6
    head.last_layer_direction.assign(direction * 7.0)
    assert_close_to_scale(head(features, training=False).numpy(), out)
    head.last_layer_direction.assign(direction)


def test_norm_last_layer_off_trains_the_weight_norm_scale_too():
    head = H.dino_head(16, 16, 8, kernel_initializer="he_normal", norm_last_layer=False)
    model = _model(head=head, freeze_last_layer_steps=1)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    scale = head.last_layer_scale
    np.testing.assert_array_equal(scale.numpy(), np.ones(16, np.float32))  # starts as the fixed g = 1
    model.train_on_batch(_images(0))
    np.testing.assert_array_equal(scale.numpy(), np.ones(16, np.float32))  # frozen with the direction
    model.train_on_batch(_images(1))
    assert np.max(np.abs(scale.numpy() - 1.0)) > 0  # then g trains
    # each column of the effective kernel has norm g
    kernel = head.last_layer_kernel().numpy()
    assert_close_to_scale(np.linalg.norm(kernel, axis=0), scale.numpy(), what="column norms")
    assert H.DINOHead.from_config(head.get_config()).norm_last_layer is False
    # the default (g fixed) head has no such variable, so its checkpoints are unchanged
    default = _model().projection
    assert not hasattr(default, "last_layer_scale") and default.norm_last_layer


def test_last_layer_is_frozen_for_the_first_steps():
    model = _model(freeze_last_layer_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    direction = model.projection.last_layer_direction
    snapshots = [direction.numpy().copy()]
    others = model.projection.bottleneck.kernel.numpy().copy()
    for step in range(3):
        model.train_on_batch(_images(step))
        snapshots.append(direction.numpy().copy())
    np.testing.assert_array_equal(snapshots[1], snapshots[0])
    np.testing.assert_array_equal(snapshots[2], snapshots[0])
    assert np.max(np.abs(snapshots[3] - snapshots[0])) > 0  # trains from the third step
    assert np.max(np.abs(model.projection.bottleneck.kernel.numpy() - others)) > 0


def test_gradient_clipping_bounds_each_weights_step():
    model = _model(clip_norm=1e-3)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    assert model.optimizer.clipnorm == 1e-3
    before = [w.numpy().copy() for w in model.optimized_variables()]
    model.train_on_batch(_images())
    steps = [np.linalg.norm(w.numpy() - b) for w, b in zip(model.optimized_variables(), before)]
    assert max(steps) <= 1e-3 * (1 + 1e-3), max(steps)
    assert max(steps) >= 1e-3 * (1 - 1e-3)  # the large gradients were clipped to the bound


def _collapse_run(center_momentum):
    keras.utils.set_random_seed(0)
    model = DINO(small_cnn((SIZE, SIZE, 1), width=4), head=H.dino_head(64, 32, 16), momentum=0.9,
                 center_momentum=center_momentum)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    monitor = HealthMonitor.for_model(model, patience=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(_images(0, 64), batch_size=16, epochs=8, verbose=0, shuffle=False,
                            callbacks=[monitor]).history
    history["collapse_warnings"] = [w for w in caught if issubclass(w.category, CollapseWarning)]
    return history


def test_without_centering_the_teacher_collapses():
    centred, plain = _collapse_run(0.9), _collapse_run(1.0)
    # HealthMonitor.for_model watches DINO's kl_teacher_student: it flags the collapse, only that.
    assert plain["collapse_warnings"] and "centering" in str(plain["collapse_warnings"][0].message)
    assert not centred["collapse_warnings"]
    summary = {name: {k: np.round(h[k], 4).tolist() for k in ("teacher_entropy", "kl_teacher_student")}
               for name, h in (("centred", centred), ("no_centering", plain))}
    print(json.dumps(summary))  # the measured numbers, shown with -s
    # Sharpening alone: the teacher becomes one-hot (entropy -> 0) and the student copies it (KL -> 0).
    assert plain["teacher_entropy"][0] > 0.03
    assert np.mean(plain["teacher_entropy"][-4:]) < 0.01
    assert np.mean(plain["kl_teacher_student"][-4:]) < 0.02
    # With centering the teacher keeps moving and the student keeps learning from it.
    assert np.mean(centred["kl_teacher_student"][-4:]) > 10 * np.mean(plain["kl_teacher_student"][-4:])
    assert np.mean(centred["teacher_entropy"][-4:]) > 3 * np.mean(plain["teacher_entropy"][-4:])


REPLICAS = r"""
import json, sys
import numpy as np
from keras_ssl.backend import keras, tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
sys.path.insert(0, "tests")
from numerics import relative_step_difference
from tiny_vision import TINY_HEADS
from keras_ssl import augment
from keras_ssl.vision.backbones import small_cnn
from keras_ssl.vision.methods.self_distillation import DINO

images = np.random.default_rng(0).random((32, 12, 12, 1)).astype("float32")  # two steps

def run(case, strategy, start=None):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        if case == "multi_crop":
            crops = augment.multi_crop.dino(global_size=12, local_size=6, num_local=2, seed=1)
            model = DINO(small_cnn((None, None, 1), width=4, sync_batchnorm=True), augment=crops,
                         **TINY_HEADS["DINO"]())
        else:
            model = DINO(small_cnn((12, 12, 1), width=4, sync_batchnorm=True), **TINY_HEADS["DINO"]())
        if start is not None:
            model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(tf.data.Dataset.from_tensor_slices(images).batch(16), epochs=1, verbose=0).history
    return before, model, history

mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # one for all cases (collective keys)
for case in sys.argv[1:]:
    start, one, h1 = run(case, tf.distribute.get_strategy())
    _, two, h2 = run(case, mirrored, start)
    print(json.dumps({"case": case, "loss": [h1["loss"][0], h2["loss"][0]],
        "relative_step_diff": relative_step_difference(start, one.get_weights(), two.get_weights()),
        "center": [one.center.numpy().tolist(), two.center.numpy().tolist()]}), flush=True)
"""


@pytest.fixture(scope="module")
def replica_runs():
    """Two steps on one replica and on two, in one subprocess (two logical CPU devices). Two global
    views without local crops ("plain") are also covered by test_vision_distributed's TINY_HEADS entry."""
    out = subprocess.run([sys.executable, "-c", REPLICAS, "multi_crop"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in lines}


def test_two_replicas_match_one_center_included(replica_runs):
    r = replica_runs["multi_crop"]
    print({k: v for k, v in r.items() if k != "center"})
    assert close(*r["loss"], 1e-4), r["loss"]
    assert r["relative_step_diff"] <= STEP_RTOL, r["relative_step_diff"]
    one, two = np.asarray(r["center"][0]), np.asarray(r["center"][1])
    assert np.max(np.abs(one)) > 0
    assert_close_to_scale(two, one, rtol=1e-3, what="center")


def _resumable(seed=0):
    return _model(seed, total_steps=6, teacher_temperature_warmup=(0.04, 0.07, 4), freeze_last_layer_steps=1)


def _fit(model, seeds):
    data = tf.data.Dataset.from_tensor_slices(np.concatenate([_images(s) for s in seeds])).batch(BATCH)
    model.fit(data, verbose=0)


def test_resume_from_a_checkpoint_is_bitwise(tmp_path):
    straight = _resumable()
    straight.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    _fit(straight, [0, 1, 2])
    path = tf.train.Checkpoint(model=straight, optimizer=straight.optimizer).write(str(tmp_path / "ckpt"))
    _fit(straight, [3, 4, 5])  # the uninterrupted run goes on

    resumed = _resumable(seed=7)  # other initial weights: everything must come from the checkpoint
    resumed.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    resumed._build_optimizer()
    tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).read(path).assert_consumed()
    assert int(resumed.optimizer.iterations.numpy()) == 3  # the momentum/temperature schedules' step
    _fit(resumed, [3, 4, 5])
    assert len(straight.weights) > 10
    # metric state and step counters included; measured: bit for bit
    assert state_difference(straight.get_weights(), resumed.get_weights()) <= RESUME_RTOL
    assert np.max(np.abs(straight.center.numpy())) > 0


def test_export_serves_the_encoder(tmp_path):
    model = _model()
    path = export_saved_model(model, str(tmp_path / "dino"))
    images = _images(5)
    out = tf.saved_model.load(path).signatures["serve_float"](images=tf.constant(images))
    assert_close_to_scale(out["embedding"].numpy(), model.encoder(images, training=False).numpy())
    assert out["projection"].shape == (BATCH, 16)


def test_multi_crop_views_train_the_student_on_all_crops():
    crops = augment.multi_crop.dino(global_size=SIZE, local_size=4, num_local=3, seed=0)
    model = _model(encoder=small_cnn((None, None, 1), width=4), augment=crops)
    views = model.pretext(_images(), training=True)
    assert views.num_global == 2 and [v.shape[1] for v in views.views] == [SIZE, SIZE, 4, 4, 4]
    # (Training on multi-crop views: test_two_replicas_match_one_center_included[multi_crop].)
    # The teacher sees the 2 globals, the student all 5 views: 2 x 4 pairs with i != j.
    features = model.encode_views(views.views, training=False)
    student = [model.projection(f, training=False).numpy() for f in features]
    teacher = [model.target_projection(model.target_encoder(v, training=False), training=False).numpy()
               for v in views.views[:2]]
    per_example, _ = losses.dino_cross_entropy(student, teacher, model.center.numpy(), 0.1, 0.04)
    expected, _ = _numpy_dino(student, teacher, model.center.numpy(), 0.1, 0.04)
    assert_close_to_scale(per_example.numpy(), expected)


def test_resnet_backbone_trains_on_multi_crop_views():
    """The CIFAR ResNet-18 (tiny width, any input size) as the encoder: global and local crops of
    colour images, one step: the loss is finite and the encoder's weights move."""
    keras.utils.set_random_seed(0)
    encoder = resnet18_cifar(input_shape=(None, None, 3), width=4, name="tiny_resnet")
    crops = augment.multi_crop.dino(global_size=16, local_size=8, num_local=2, seed=0)
    model = DINO(encoder, augment=crops, **{**TINY_HEADS["DINO"](), "momentum": 0.9})
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.numpy().copy() for w in model.encoder.trainable_weights]
    images = np.random.default_rng(0).random((BATCH, 16, 16, 3)).astype(np.float32)
    history = model.fit(images, batch_size=BATCH, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    moved = [float(np.abs(w.numpy() - b).max()) for w, b in zip(model.encoder.trainable_weights, before)]
    assert max(moved) > 0
    assert model.encoder(images[:2, :8, :8], training=False).shape == (2, 32)  # 8 * width features


def test_hugging_face_vit_encoder_with_global_crops():
    """A tiny TFViTModel as the encoder (class token). Its position embeddings fix the image size, so
    it takes global crops only (a plain augmentation or a MultiCrop without local crops)."""
    from transformers import TFViTModel, ViTConfig

    keras.utils.set_random_seed(0)
    config = ViTConfig(image_size=SIZE, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)
    # add_pooling_layer=True so that cloning the model for the teacher builds the same weights.
    vit = TFViTModel(config, add_pooling_layer=True)
    inputs = keras.Input((SIZE, SIZE, 1))
    hidden = vit(pixel_values=tf.transpose(inputs, (0, 3, 1, 2))).last_hidden_state
    model = DINO(keras.Model(inputs, hidden[:, 0]), **TINY_HEADS["DINO"](), momentum=0.9)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    online = [w for w in structural_weights(model.encoder) if w.trainable]
    target = [t for t, w in zip(structural_weights(model.target_encoder), structural_weights(model.encoder))
              if w.trainable]
    before = [t.numpy().copy() for t in target]
    history = model.fit(_images(0, 16), batch_size=8, epochs=1, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    moved = max(float(np.max(np.abs(t.numpy() - b))) for t, b in zip(target, before))
    assert moved > 0 and all(t is not w for t, w in zip(target, online))


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="teacher_temperature must be positive"):
        _model(teacher_temperature=0.0)
    with pytest.raises(ValueError, match="teacher_temperature_warmup must be"):
        _model(teacher_temperature_warmup=(0.04, 0.07))
    with pytest.raises(ValueError, match="center_momentum must be in"):
        _model(center_momentum=1.5)
    with pytest.raises(ValueError, match="clip_norm must be positive"):
        _model(clip_norm=-1.0)
    with pytest.raises(ValueError, match="freeze_last_layer_steps needs a DINOHead"):
        _model(head=H.byol_projection(16, 8), freeze_last_layer_steps=3)
    with pytest.raises(ValueError, match="must accept any size"):  # a fixed-size encoder and local crops
        _model(augment=augment.multi_crop.dino(global_size=SIZE, local_size=4, num_local=2))
    model = _model(clip_norm=1.0)
    with pytest.raises(ValueError, match="global_clipnorm"):
        model.compile(optimizer=keras.optimizers.SGD(0.1, global_clipnorm=1.0))
