"""Reconstruction and transformation-prediction pretexts: corruptions, Lab colour, losses, panels.

Corruptions are checked statistically (noise moments, hit rates, exact patch counts) like the token
masker; Lab against an independent float64 NumPy reference and published values; each method's
loss against the formula recomputed from its own sub-networks.
"""

from __future__ import annotations

import glob

import numpy as np
import pytest
from numerics import assert_close_to_scale

import keras_ssl
from keras_ssl import augment, vision
from keras_ssl.backend import keras, tf
from keras_ssl.vision.backbones import small_cnn
from keras_ssl.vision.color import ab_gamut, lab_to_rgb, rgb_to_lab

RNG = np.random.default_rng(0)
GRAY = RNG.random((16, 12, 12, 1)).astype(np.float32)
RGB = RNG.random((8, 12, 12, 3)).astype(np.float32)


# --- corruptions -------------------------------------------------------------------------------
def test_gaussian_noise_has_the_requested_moments_and_is_fresh_every_call():
    images = np.full((64, 16, 16, 3), 0.5, np.float32)
    op = augment.GaussianNoise(0.05, seed=1)
    first, second = op(images).numpy() - 0.5, op(images).numpy() - 0.5
    for noise in (first, second):  # 49,152 draws: the std of the sample std is ~0.05 / sqrt(2n) = 1.6e-4
        assert abs(noise.mean()) < 1e-3 and abs(noise.std() - 0.05) < 1e-3
        assert abs(np.mean(np.abs(noise) < 0.05) - 0.6827) < 0.01  # Gaussian, not uniform
    assert np.abs(first - second).max() > 0.05  # a new draw every step
    replay = augment.GaussianNoise(0.05, seed=1)
    np.testing.assert_array_equal(replay(images).numpy() - 0.5, first)  # a seed replays its draws
    np.testing.assert_array_equal(op(images, training=False).numpy(), images)


def test_salt_and_pepper_hits_the_requested_fraction_of_positions_in_all_channels():
    images = np.full((64, 16, 16, 3), 0.5, np.float32)
    out = augment.SaltAndPepper(0.2, seed=0)(images).numpy()
    hit = out[..., 0] != 0.5
    assert abs(hit.mean() - 0.2) < 0.01  # 16,384 positions
    assert np.all((out[..., 1] != 0.5) == hit) and np.all((out[..., 2] != 0.5) == hit)
    assert abs(out[..., 0][hit].mean() - 0.5) < 0.03  # salt and pepper half each
    assert set(np.unique(out[..., 0][hit])) <= {0.0, 1.0}


def test_patch_masking_blanks_exactly_the_requested_number_of_aligned_patches():
    images = np.ones((32, 16, 16, 1), np.float32)
    op = augment.PatchMasking(patch_size=4, mask_ratio=0.75, seed=0)
    masked = op(images).numpy()[..., 0] == 0.0  # [32, 16, 16]
    patches = masked.reshape(32, 4, 4, 4, 4).transpose(0, 1, 3, 2, 4).reshape(32, 16, 16)
    assert np.all(patches.all(-1) | ~patches.any(-1))  # whole patches only
    np.testing.assert_array_equal(patches.all(-1).sum(-1), 12)  # exactly round(0.75 * 16) per image
    assert len({m.tobytes() for m in patches.all(-1)}) > 16  # per-image choices
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        op(np.ones((2, 10, 10, 1), np.float32))
    with pytest.raises(ValueError, match=r"mask_ratio must lie in \(0, 1\)"):
        augment.PatchMasking(mask_ratio=1.0)


def test_random_erasing_erases_one_rectangle_of_the_requested_area_with_probability_p():
    images = np.ones((400, 20, 20, 1), np.float32)
    out = augment.RandomErasing(p=0.5, scale=(0.1, 0.2), ratio=(0.5, 2.0), value=0.0, seed=0)(images).numpy()
    erased = out[..., 0] == 0.0
    any_erased = erased.any(axis=(1, 2))
    assert abs(any_erased.mean() - 0.5) < 0.08  # 400 Bernoulli(0.5) draws: std 0.025
    for mask in erased[any_erased]:
        rows, cols = np.where(mask.any(1))[0], np.where(mask.any(0))[0]
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one filled rectangle
        assert 0.05 <= mask.mean() <= 0.3  # area within scale, up to rounding of the sides


def test_corruptions_run_under_xla_and_by_name():
    op = augment.corruption("salt_and_pepper", seed=0)
    assert isinstance(op, augment.SaltAndPepper)
    out = tf.function(lambda x: op(x), jit_compile=True)(tf.constant(GRAY))
    assert out.shape == GRAY.shape
    with pytest.raises(ValueError, match="Unknown corruption 'blur'"):
        augment.corruption("blur")


# --- Lab colour ---------------------------------------------------------------------------------
def _lab_reference(rgb: np.ndarray) -> np.ndarray:
    """sRGB -> Lab in float64, written from the CIE definitions (D65)."""
    rgb = rgb.astype(np.float64)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                  [0.019334, 0.119193, 0.950227]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_lab_matches_the_cie_definition_published_values_and_round_trips():
    colours = RNG.random((2000, 3)).astype(np.float32)
    np.testing.assert_allclose(rgb_to_lab(colours).numpy(), _lab_reference(colours), atol=0.02)
    red, white, black = rgb_to_lab([[1, 0, 0], [1, 1, 1], [0, 0, 0]]).numpy()
    np.testing.assert_allclose(red, [53.24, 80.09, 67.20], atol=0.01)  # published sRGB red
    np.testing.assert_allclose(white, [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(black, [0, 0, 0], atol=1e-4)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(colours)).numpy(), colours, atol=1e-4)


def test_every_srgb_colour_lies_in_a_cell_of_the_ab_gamut():
    centres = ab_gamut()
    assert 200 < len(centres) < 330  # Zhang et al. keep 313 cells seen in ImageNet
    ab = rgb_to_lab(RNG.random((5000, 3)).astype(np.float32)).numpy()[:, 1:]
    nearest = np.sqrt(((ab[:, None] - centres[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() <= 5 * np.sqrt(2) + 1e-3  # inside its 10 x 10 cell


# --- the methods ----------------------------------------------------------------------------------
def _encoder(channels: int = 1):
    keras.utils.set_random_seed(0)
    return small_cnn((12, 12, channels), width=4)


def test_autoencoder_loss_is_the_reconstruction_error_of_the_corrupted_input():
    model = vision.Autoencoder(_encoder(), corruption=augment.GaussianNoise(0.2, seed=0), decoder_width=8)
    corrupted, clean = model.pretext(GRAY, training=True)
    again, _ = model.pretext(GRAY, training=True)
    assert np.abs(corrupted.numpy() - again.numpy()).max() > 0.1  # fresh corruption every step
    np.testing.assert_array_equal(clean.numpy(), GRAY)
    loss, stats = model.compute_loss_and_stats((corrupted, clean), training=False)
    output = model.decoder(model.encoder(corrupted, training=False)).numpy()
    mse = np.mean((output - GRAY) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(loss.numpy(), mse.mean(), rtol=1e-5)
    np.testing.assert_allclose(stats["psnr"][0].numpy(), np.mean(-10 * np.log10(mse)), rtol=1e-5)
    bce = vision.Autoencoder(model.encoder, decoder=model.decoder, loss="bce")
    p = np.clip(output, 1e-7, 1 - 1e-7)
    expected = -np.mean(GRAY * np.log(p) + (1 - GRAY) * np.log(1 - p))
    np.testing.assert_allclose(bce.compute_loss_and_stats((corrupted, clean), False)[0].numpy(), expected,
                               rtol=1e-5)
    assert model.reconstruct(GRAY).shape == GRAY.shape


def test_rotation_prediction_sees_all_four_rotations_of_every_image():
    model = vision.RotationPrediction(_encoder(), head=vision.heads.rotation_head(8))
    rotated, labels = model.pretext(GRAY, training=True)
    assert rotated.shape == (64, 12, 12, 1)
    np.testing.assert_array_equal(labels.numpy(), np.repeat(np.arange(4), 16))
    for k in range(4):
        np.testing.assert_array_equal(rotated[16 * k:16 * (k + 1)].numpy(), np.rot90(GRAY, k, axes=(1, 2)))
    loss, stats = model.compute_loss_and_stats((rotated, labels), training=False)
    logits = model.head(model.encoder(rotated, training=False), training=False).numpy()
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss.numpy(), -log_p[np.arange(64), labels.numpy()].mean(), rtol=1e-5)
    np.testing.assert_allclose(stats["rotation_accuracy"][0].numpy(),
                               np.mean(logits.argmax(-1) == labels.numpy()))
    assert model.predict_rotation(GRAY).shape == (16, 4)


def test_colorization_regression_and_rebalanced_classification_losses():
    model = vision.Colorization(_encoder(1), decoder_width=8)
    encoder_input, target = model.pretext(RGB, training=True)
    lab = _lab_reference(RGB)
    np.testing.assert_allclose(encoder_input.numpy()[..., 0], lab[..., 0] / 100, atol=2e-4)
    loss, stats = model.compute_loss_and_stats((encoder_input, target), training=False)
    output = model.decoder([model.encoder(encoder_input), target[..., :1]]).numpy()
    ab = target.numpy()[..., 1:]
    np.testing.assert_allclose(loss.numpy(), np.mean((output - ab / 110) ** 2), rtol=1e-4)
    np.testing.assert_allclose(stats["ab_error"][0].numpy(), np.mean(np.abs(output * 110 - ab)), rtol=1e-4)

    prior = vision.ab_prior(RGB)
    np.testing.assert_allclose(prior.sum(), 1.0, rtol=1e-5)
    clf = vision.Colorization(_encoder(3), loss="classification", prior=prior, decoder_width=8)
    w = clf.class_weights.numpy()
    np.testing.assert_allclose(np.sum(prior * w), 1.0, rtol=1e-5)  # E_p[w] = 1
    expected_w = 1 / (0.5 * prior + 0.5 / len(prior))
    np.testing.assert_allclose(w, expected_w / np.sum(prior * expected_w), rtol=1e-5)
    # the soft cross-entropy, recomputed in NumPy for a few pixels
    encoder_input, target = clf.pretext(RGB, training=True)
    assert encoder_input.shape == (8, 12, 12, 3)  # lightness tiled for a colour encoder
    logits = clf.decoder([clf.encoder(encoder_input), target[..., :1]]).numpy()
    centres = ab_gamut()
    total = 0.0
    for b, i, j in [(0, 0, 0), (3, 5, 7), (7, 11, 2)]:
        d2 = ((target.numpy()[b, i, j, 1:] - centres) ** 2).sum(-1)
        near = np.argsort(d2)[:5]
        soft = np.exp(-d2[near] / 50.0)
        soft /= soft.sum()
        log_p = logits[b, i, j] - np.log(np.exp(logits[b, i, j]).sum())
        total += -w[near[0]] * np.sum(soft * log_p[near])
    ours = clf._soft_cross_entropy(tf.constant(logits), target[..., 1:]).numpy()
    np.testing.assert_allclose(ours[0, 0, 0] + ours[3, 5, 7] + ours[7, 11, 2], total, rtol=1e-4)
    # colours decode with the annealed mean: softmax(log p / T) weights the cell centres
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    annealed = np.exp(log_p / 0.38)
    annealed /= annealed.sum(-1, keepdims=True)
    np.testing.assert_allclose(clf._decode_ab(tf.constant(logits)).numpy(), annealed @ centres, rtol=1e-4,
                               atol=1e-3)
    assert clf.colorize(RGB).shape == RGB.shape and clf.colorize(RGB[..., :1]).shape == RGB.shape


def test_reconstruction_pretexts_give_clear_errors():
    with pytest.raises(ValueError, match="Colorization needs colour images"):
        vision.Colorization(_encoder(1)).pretext(GRAY, training=True)
    with pytest.raises(ValueError, match="square images"):
        keras.utils.set_random_seed(0)
        vision.RotationPrediction(small_cnn((12, 8, 1), width=4))
    with pytest.raises(ValueError, match="must output 4 logits"):
        vision.RotationPrediction(_encoder(), head=vision.heads.MLPHead((8,), 3))
    wrong = vision.decoders.pixel_decoder(16, (8, 8, 1))
    with pytest.raises(ValueError, match=r"outputs \(8, 8, 1\) per example but the target is \(12, 12, 1\)"):
        vision.Autoencoder(_encoder(), decoder=wrong)
    with pytest.raises(ValueError, match="loss must be 'mse' or 'bce'"):
        vision.Autoencoder(_encoder(), loss="l1")
    with pytest.raises(ValueError, match="prior .* applies to loss='classification' only"):
        vision.Colorization(_encoder(), prior=np.ones(len(ab_gamut())))
    with pytest.raises(ValueError, match="one augmentation"):
        vision.Autoencoder(_encoder(), augment=(augment.RandomFlip(), augment.RandomFlip()))
    with pytest.raises(ValueError, match="does not produce images"):
        rotation = vision.RotationPrediction(_encoder(), head=vision.heads.rotation_head(8))
        vision.render_reconstructions(rotation, GRAY)


def test_render_reconstructions_tiles_panels_and_the_callback_writes_tensorboard_images(tmp_path):
    model = vision.Autoencoder(_encoder(), corruption="patches", decoder_width=8)
    grid = vision.render_reconstructions(model, GRAY, n_images=3, path=str(tmp_path / "grid.png"))
    assert grid.shape == (36, 36, 3) and grid.dtype == np.uint8  # original | corrupted | reconstruction
    np.testing.assert_array_equal(grid[:12, :12, 0], np.round(GRAY[0, ..., 0] * 255).astype(np.uint8))
    assert (tmp_path / "grid.png").exists()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    callback = vision.ReconstructionImages(GRAY[:4], str(tmp_path / "tb"))
    model.fit(GRAY, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    events = glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    assert events
    images = [v for e in tf.compat.v1.train.summary_iterator(events[0]) for v in e.summary.value
              if v.tag == "reconstructions"]
    assert len(images) == 2
    # exported like every vision method: raw images in, the encoder's embedding out
    keras_ssl.export_saved_model(model, str(tmp_path / "export" / "1"))
    serve = tf.saved_model.load(str(tmp_path / "export" / "1")).signatures["serve_float"]
    served = serve(images=tf.constant(GRAY))
    assert_close_to_scale(served["embedding"].numpy(), model.predict(GRAY, verbose=0))


def test_colorization_learns_colours_of_real_photos():
    """On 32x32 crops of scikit-learn's two sample photos (20 epochs), the ab error on held-out crops
    falls well below the best constant colours: gray (a = b = 0) and the training crops' median ab."""
    from sklearn.datasets import load_sample_images

    photos = np.stack(load_sample_images().images)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, [photos.shape[1] - 32, photos.shape[2] - 32], size=(512, 2))
    crops = np.stack([photos[i % 2, r:r + 32, c:c + 32] for i, (r, c) in enumerate(starts)])
    train, held_out = crops[:384], crops[384:]
    keras.utils.set_random_seed(0)
    model = vision.Colorization(small_cnn((32, 32, 1), width=8, strides=(2, 2, 2)), decoder_width=16)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(train, batch_size=32, epochs=20, verbose=0).history
    ab_train = _lab_reference(train / 255.0)[..., 1:].reshape(-1, 2)
    ab_held_out = _lab_reference(held_out / 255.0)[..., 1:]
    constant = min(np.abs(ab_held_out).mean(), np.abs(ab_held_out - np.median(ab_train, 0)).mean())
    error = model.evaluate(held_out, batch_size=64, verbose=0, return_dict=True)["ab_error"]
    # Measured (AMD EPYC): held out 7.85 with oneDNN, 8.41 with TF_ENABLE_ONEDNN_OPTS=0, best constant
    # 11.49. After 10 epochs the kernels' rounding alone moved it from 8.1 to 10.4: train long enough.
    print("ab error", history["ab_error"], "held out", error, "best constant", constant)
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert error < 0.85 * constant
    colourised = model.colorize(held_out[:4]).numpy()
    assert colourised.shape == (4, 32, 32, 3) and colourised.min() >= 0 and colourised.max() <= 1
