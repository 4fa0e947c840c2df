"""Jigsaw puzzles (vision.Jigsaw): the permutation set against the paper's algorithm, the puzzles against
the images they were cut from, the loss against a reference, clear errors, and learning on digits.

One vs two replicas and the precision modes are in test_vision_distributed.py / test_precision.py.
"""

import itertools

import numpy as np
import pytest
from numerics import assert_close_to_scale

from keras_ssl import vision
from keras_ssl.backend import keras, tf
from keras_ssl.vision.backbones import small_cnn


def reference_permutations(num_tiles, num_permutations):
    """Noroozi & Favaro's Algorithm 1 written plainly: the candidate with the largest summed Hamming
    distance to the chosen set joins it (first on ties), from a seeded random start."""
    rng = np.random.default_rng(0)
    candidates = np.array(list(itertools.permutations(range(num_tiles))))
    total = np.zeros(len(candidates))
    chosen = [int(rng.integers(len(candidates)))]
    while len(chosen) < num_permutations:
        total += (candidates != candidates[chosen[-1]]).sum(1)
        masked = total.copy()
        masked[chosen] = -1
        chosen.append(int(masked.argmax()))
    return candidates[chosen]


def test_permutation_set_is_the_papers_maximal_hamming_distance_set():
    np.testing.assert_array_equal(vision.jigsaw_permutations(9, 60), reference_permutations(9, 60))
    np.testing.assert_array_equal(vision.jigsaw_permutations(4, 24), reference_permutations(4, 24))
    full = vision.jigsaw_permutations(9, 1000)
    assert full.shape == (1000, 9) and full.dtype == np.int32
    assert all(sorted(row) == list(range(9)) for row in full.tolist())
    assert len({tuple(row) for row in full.tolist()}) == 1000
    distances = (full[:, None, :] != full[None, :, :]).sum(-1)
    # the paper reports an average Hamming distance of 8.00 for its 1,000 permutations
    assert distances[~np.eye(1000, dtype=bool)].mean() == pytest.approx(8.0, abs=0.02)
    np.testing.assert_array_equal(vision.jigsaw_permutations(9, 1000), full)  # the same in every process
    many = vision.jigsaw_permutations(16, 50)  # beyond 9 tiles: drawn candidates, still permutations
    assert all(sorted(row) == list(range(16)) for row in many.tolist())


def any_size_encoder():
    keras.utils.set_random_seed(0)
    return small_cnn((None, None, 1), width=4)


def test_puzzles_are_tiles_of_each_cell_in_the_drawn_order():
    images = np.random.default_rng(0).random((6, 31, 31, 1)).astype(np.float32)  # cells of 10, 1 px left
    model = vision.Jigsaw(any_size_encoder(), grid=3, num_permutations=50, tile_size=7, normalize_tiles=False,
                          head=vision.heads.jigsaw_head(50, 8), seed=3)
    puzzles, labels = (x.numpy() for x in model.pretext(images, training=True))
    assert puzzles.shape == (6, 9, 7, 7, 1) and labels.shape == (6,)
    order = model.permutations.numpy()[labels]
    offsets = set()
    for b in range(6):
        for k in range(9):
            cell = order[b, k]
            top, left = 10 * (cell // 3), 10 * (cell % 3)
            found = [(dy, dx) for dy in range(4) for dx in range(4)
                     if np.array_equal(images[b, top + dy:top + dy + 7, left + dx:left + dx + 7],
                                       puzzles[b, k])]
            assert found, f"puzzle {b} position {k} is not a tile of cell {cell}"
            offsets.add(found[0])
    assert len(offsets) > 8  # offsets are drawn, anywhere in the 3 free pixels of a cell
    assert len(set(labels.tolist())) > 3

    normalized = vision.Jigsaw(any_size_encoder(), grid=3, num_permutations=50, tile_size=7,
                               head=vision.heads.jigsaw_head(50, 8), seed=3)
    tiles, same_labels = (x.numpy() for x in normalized.pretext(images, training=True))
    np.testing.assert_array_equal(same_labels, labels)  # same seed, same draws
    expected = (puzzles - puzzles.mean(axis=(2, 3, 4), keepdims=True)) / np.sqrt(
        puzzles.var(axis=(2, 3, 4), keepdims=True) + 0.01)
    np.testing.assert_allclose(tiles, expected, atol=1e-4 * np.abs(expected).max())


def test_draws_are_fresh_every_step_and_the_same_under_xla():
    images = np.random.default_rng(1).random((8, 24, 24, 1)).astype(np.float32)

    def build():
        return vision.Jigsaw(any_size_encoder(), grid=2, num_permutations=24, tile_size=10,
                             head=vision.heads.jigsaw_head(24, 8), seed=5)

    model = build()
    first, second = (model.pretext(images, training=True)[1].numpy() for _ in range(2))
    assert not np.array_equal(first, second)
    xla_model = build()
    pretext = tf.function(lambda x: xla_model.pretext(x, training=True), jit_compile=True)
    xla_first = pretext(images)
    np.testing.assert_array_equal(xla_first[1].numpy(), first)
    # XLA fuses the per-tile normalisation differently: equal up to rounding, relative to the values
    assert_close_to_scale(xla_first[0].numpy(), build().pretext(images, training=True)[0].numpy(),
                          what="XLA tiles")


def test_loss_is_the_cross_entropy_of_the_permutation_over_the_concatenated_tile_features():
    images = np.random.default_rng(2).random((4, 20, 20, 1)).astype(np.float32)
    model = vision.Jigsaw(any_size_encoder(), grid=2, num_permutations=24, tile_size=8,
                          head=vision.heads.jigsaw_head(24, 8), seed=0)
    puzzles, labels = model.pretext(images, training=True)
    loss, health = model.ssl_loss(puzzles, labels, training=False)
    p = puzzles.numpy()
    features = model.encoder(p.reshape(16, 8, 8, 1), training=False).numpy()  # tiles of image 0 first
    logits = model.head(features.reshape(4, 4 * model.feature_dim), training=False).numpy().astype(np.float64)
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    y = labels.numpy()
    expected = -log_probs[np.arange(4), y].mean()
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(health["jigsaw_accuracy"]) == pytest.approx(np.mean(logits.argmax(1) == y))


def test_jigsaw_gives_clear_errors():
    head = vision.heads.jigsaw_head(24, 8)
    with pytest.raises(ValueError, match="grid must be an int >= 2"):
        vision.Jigsaw(any_size_encoder(), grid=1)
    with pytest.raises(ValueError, match="num_permutations must be between 2 and 24 for 4 tiles"):
        vision.Jigsaw(any_size_encoder(), grid=2, num_permutations=25)
    with pytest.raises(ValueError, match="must output 24 logits"):
        vision.Jigsaw(any_size_encoder(), grid=2, num_permutations=24, head=vision.heads.jigsaw_head(10, 8))
    with pytest.raises(ValueError, match="square tiles"):
        vision.Jigsaw(small_cnn((8, 6, 1), width=4), grid=2, num_permutations=24, head=head)
    with pytest.raises(ValueError, match="tile_size=5 but the encoder takes 8x8"):
        vision.Jigsaw(small_cnn((8, 8, 1), width=4), grid=2, num_permutations=24, tile_size=5, head=head)
    fixed = vision.Jigsaw(small_cnn((8, 8, 1), width=4), grid=2, num_permutations=24, head=head)
    with pytest.raises(ValueError, match="12x12 images make 6x6-pixel cells in a 2x2 grid, too small for "
                                         "8-pixel tiles"):
        fixed.pretext(np.zeros((2, 12, 12, 1), np.float32), training=True)
    with pytest.raises(ValueError, match="Images have 3 channels but the encoder takes 1"):
        fixed.pretext(np.zeros((2, 16, 16, 3), np.float32), training=True)


# Seed 0, 6 epochs of the digits recipe: held-out jigsaw accuracy 0.79 (the loss 4.23 -> 1.01); chance 0.01.
EPOCHS = 6
MIN_HELD_OUT_ACCURACY = 0.5


@pytest.mark.slow
def test_jigsaw_solves_held_out_digit_puzzles(digits_data):
    """Trained on 1,000 digits for a few epochs, the permutation of unseen digits' puzzles is found far
    above chance (1 in 100)."""
    from keras_ssl.evaluation.digits_protocol import pretrain_on_digits

    model = pretrain_on_digits("jigsaw", digits_data, seed=0, epochs=EPOCHS)
    losses = model.history.history["loss"]
    assert losses[-1] < losses[0] - 1.0, losses
    test = digits_data["test_x"][:256]
    puzzles, labels = model.pretext(test, training=True)
    _, health = model.ssl_loss(puzzles, labels, training=False)
    print("loss", losses, "held-out jigsaw accuracy", float(health["jigsaw_accuracy"]))
    assert float(health["jigsaw_accuracy"]) > MIN_HELD_OUT_ACCURACY


def test_render_shows_puzzles_and_solutions_without_advancing_the_draws():
    from keras_ssl.vision.methods import transformation_prediction as tp

    images = np.random.default_rng(4).random((3, 30, 30, 1)).astype(np.float32)  # 10-px cells
    model = vision.Jigsaw(any_size_encoder(), grid=3, num_permutations=50, tile_size=6,
                          head=vision.heads.jigsaw_head(50, 8), seed=3)
    state = model.draws.rng_state.numpy().copy()
    grid = vision.render_reconstructions(model, images)
    assert grid.shape == (90, 90, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(model.draws.rng_state.numpy(), state)  # training draws untouched
    # a head that always names the true permutation: "solved" puts every tile back in its own cell
    draws = model.draws.uniform(3, tf.constant([tp._RENDER_STEP, 0, 0], tf.int64), 19)
    labels = model._puzzles(tf.constant(images), draws)[1]
    model.head = lambda x, training=False: tf.one_hot(labels, 50) * 10.0
    titles, panels = zip(*model.reconstruction_panels(images))
    assert titles == ("original", "puzzle", "solved")
    solved = np.asarray(panels[2])
    for b in range(3):
        for cell in range(9):
            top, left = 10 * (cell // 3), 10 * (cell % 3)
            shown = solved[b, top + 2:top + 8, left + 2:left + 8]  # centred in the cell
            assert any(np.array_equal(images[b, top + dy:top + dy + 6, left + dx:left + dx + 6], shown)
                       for dy in range(5) for dx in range(5)), (b, cell)
    assert not np.array_equal(np.asarray(panels[1]), solved)  # the puzzle itself is shuffled
