"""Transformation prediction: recognise which geometric transformation was applied (RotNet, Jigsaw)."""

from __future__ import annotations

import functools
import itertools
import math
from typing import Callable, Optional

import numpy as np

from keras_ssl.augment.ops import Augmentation
from keras_ssl.backend import keras, tf
from keras_ssl.vision import heads as H
from keras_ssl.vision.methods._shared import SingleImageMethod, build_head


class RotationPrediction(SingleImageMethod):
    """RotNet (Gidaris et al., 2018): classify the rotation (0, 90, 180, 270 degrees) of an image.

    All four rotations of every image are in the same batch (the paper's best setting): a batch of
    ``B`` square images trains on ``4B``, with a 4-way cross-entropy averaged over the global batch.
    ``augment``: an optional augmentation applied before rotating (the paper uses none beyond
    flips/crops). ``head``: logits from pooled features; default
    :func:`keras_ssl.vision.heads.rotation_head` (``256 -> BN -> ReLU -> 4``, synchronised BN).
    Metrics: ``loss``, ``rotation_accuracy``, ``embedding_std``.
    """

    NUM_ROTATIONS = 4

    def __init__(self, encoder: keras.Model, augment: Optional[Callable] = None,
                 head: Optional[keras.layers.Layer] = None, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        height, width = self.image_shape[:2]
        if height is None or height != width:
            raise ValueError(f"RotationPrediction needs square images (a 90-degree rotation must keep the "
                             f"shape); the encoder takes {height}x{width}. Crop or resize the images.")
        self.head = build_head(head or H.rotation_head(), self.feature_dim)
        classes = int(self.head.compute_output_shape((None, self.feature_dim))[-1])
        if classes != self.NUM_ROTATIONS:
            raise ValueError(f"The rotation head must output {self.NUM_ROTATIONS} logits, not {classes}.")

    def health_metric_names(self):
        return ("rotation_accuracy", "embedding_std")

    def pretext(self, inputs, training: bool):
        images = self.augmented(self._check_images(inputs), training)
        rotated = tf.concat([tf.image.rot90(images, k) for k in range(self.NUM_ROTATIONS)], axis=0)
        labels = tf.repeat(tf.range(self.NUM_ROTATIONS), tf.shape(images)[0])
        return rotated, labels

    def ssl_loss(self, rotated, labels, training):
        features = self.encoder(rotated, training=training)
        return self.classification_loss(self.head(features, training=training), labels, features,
                                        "rotation_accuracy")

    def predict_rotation(self, images) -> tf.Tensor:
        """Rotation probabilities ``[batch, 4]`` (``k``: rotated ``k`` x 90 degrees counter-clockwise)."""
        features = self.encoder(self._check_images(images), training=False)
        return tf.nn.softmax(tf.cast(self.head(features, training=False), tf.float32))


def jigsaw_permutations(num_tiles: int = 9, num_permutations: int = 1000) -> np.ndarray:
    """Noroozi & Favaro's permutation set (2016, Algorithm 1): ``int32 [num_permutations, num_tiles]``.

    Row ``p`` lists which tile each position of puzzle ``p`` shows. Greedy: start from a seeded random
    permutation, then add, one at a time, the candidate whose summed Hamming distance to the
    permutations already chosen is largest (the first on ties). Candidates: all ``num_tiles!``
    permutations for up to 9 tiles (for 9 tiles and 1,000 permutations the mean distance is 8.0 of 9,
    as in the paper), else 100,000 random ones. A pure function of its arguments (cached), so every
    process builds the same set.
    """
    num_tiles, num_permutations = int(num_tiles), int(num_permutations)
    if num_tiles < 2:
        raise ValueError(f"A jigsaw puzzle needs at least 2 tiles, got {num_tiles}.")
    limit = math.factorial(num_tiles) if num_tiles <= 9 else 100_000
    if not 2 <= num_permutations <= limit:
        raise ValueError(f"num_permutations must be between 2 and {limit} for {num_tiles} tiles, got "
                         f"{num_permutations}.")
    return np.array(_permutation_set(num_tiles, num_permutations), np.int32)


@functools.lru_cache(maxsize=8)
def _permutation_set(num_tiles: int, num_permutations: int) -> tuple:
    rng = np.random.default_rng(0)
    if num_tiles <= 9:
        candidates = np.array(list(itertools.permutations(range(num_tiles))), np.int64)
    else:
        candidates = np.unique(np.argsort(rng.random((100_000, num_tiles)), axis=1), axis=0)
    # Hamming distance to a chosen p: num_tiles minus the positions where a candidate agrees with p.
    columns = [np.ascontiguousarray(candidates[:, pos].astype(np.int8)) for pos in range(num_tiles)]
    total = np.zeros(len(candidates), np.int64)
    taken = np.zeros(len(candidates), bool)
    chosen = []
    j = int(rng.integers(len(candidates)))
    for _ in range(num_permutations):
        chosen.append(j)
        taken[j] = True
        agree = np.zeros(len(candidates), np.int8)
        for column, value in zip(columns, candidates[j].tolist()):
            agree += column == value
        total += num_tiles - agree
        j = int(np.where(taken, -1, total).argmax())
    return tuple(map(tuple, candidates[chosen].tolist()))


class _PuzzleDraws(Augmentation):
    """Counter-based uniforms ``[batch, n]``: each image's permutation and tile offsets."""

    stream = 302

    def draw(self, batch_size, n: int) -> tf.Tensor:
        return self.uniform(batch_size, self.next_step(), n)


class Jigsaw(SingleImageMethod):
    """Jigsaw puzzles (Noroozi & Favaro, 2016): shuffle a grid of tiles, classify the permutation.

    Each image is cut into ``grid x grid`` cells; from every cell a square tile of ``tile_size`` pixels
    is taken at a random offset inside it (the gaps between tiles hide edge continuity, a shortcut),
    optionally normalised to zero mean and unit variance on its own (``normalize_tiles``: hides
    low-level statistics, another shortcut), and the tiles are put in the order of one of the
    :func:`jigsaw_permutations`. Offsets and permutation are drawn per image, fresh every step, in the
    graph, the same on one replica or many. The shared encoder embeds every tile (``[batch * T, D]``,
    one batch-norm batch), the head reads the ``T`` features concatenated in puzzle order
    (``[batch, T * D]``) and classifies the permutation: ``num_permutations``-way cross-entropy
    averaged over the global batch.

    ``encoder``: takes the tiles. One built for any size (``input_shape=(None, None, C)``, global
    pooling) also embeds whole images afterwards; with a fixed-size encoder the tiles are its size.
    ``tile_size`` (any-size encoders): default ``floor(cell * 64 / 75)``, the paper's 64-pixel tiles in
    75-pixel cells. ``augment``: one optional augmentation applied to the image before cutting.
    ``head``: logits from ``[batch, T * D]``; default :func:`keras_ssl.vision.heads.jigsaw_head`.
    Metrics: ``loss``, ``jigsaw_accuracy``, ``embedding_std`` (of the tile features).

    Paper defaults: a 3x3 grid of 64-pixel tiles from 75-pixel cells of 225-pixel crops, 1,000
    permutations of maximal Hamming distance, per-tile normalisation, SGD; the context-free network
    embeds each tile with shared AlexNet layers and classifies the 9 concatenated embeddings.
    """

    encoder_sees_the_images = False  # it sees tiles

    def __init__(self, encoder: keras.Model, augment: Optional[Callable] = None, grid: int = 3,
                 num_permutations: int = 1000, tile_size: Optional[int] = None, normalize_tiles: bool = True,
                 head: Optional[keras.layers.Layer] = None, seed: Optional[int] = None, **kwargs):
        super().__init__(encoder, augment, **kwargs)
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
            raise ValueError(f"grid must be an int >= 2 (tiles per side), got {grid!r}.")
        self.grid, self.num_tiles = grid, grid * grid
        self.permutations = tf.constant(jigsaw_permutations(self.num_tiles, num_permutations))
        self.num_permutations = int(num_permutations)
        height, width = self.image_shape[:2]
        if (height is None) != (width is None) or (height is not None and height != width):
            raise ValueError(f"Jigsaw's encoder embeds square tiles; it takes {height}x{width} images. "
                             "Build it for square inputs, or for any size: input_shape=(None, None, C).")
        if height is not None and tile_size is not None and int(tile_size) != height:
            raise ValueError(f"tile_size={tile_size} but the encoder takes {height}x{width} images: the "
                             "tiles are the encoder's input. Leave tile_size out, or build the encoder for "
                             "any size.")
        if tile_size is not None and (isinstance(tile_size, bool) or int(tile_size) < 1):
            raise ValueError(f"tile_size must be a positive number of pixels, got {tile_size!r}.")
        self.tile_size = height if height is not None else (None if tile_size is None else int(tile_size))
        self.normalize_tiles = bool(normalize_tiles)
        joined_dim = self.num_tiles * self.feature_dim
        self.head = build_head(head or H.jigsaw_head(self.num_permutations), joined_dim)
        classes = int(self.head.compute_output_shape((None, joined_dim))[-1])
        if classes != self.num_permutations:
            raise ValueError(f"The jigsaw head must output {self.num_permutations} logits (one per "
                             f"permutation), not {classes}.")
        self.draws = _PuzzleDraws(seed=seed)
        self.draws.build_state()  # its step counter is a model weight from the start

    def health_metric_names(self):
        return ("jigsaw_accuracy", "embedding_std")

    def _geometry(self, images: tf.Tensor):
        """``(cell_height, cell_width, tile)`` for ``images``' static size, with clear errors."""
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError("Jigsaw needs images of a known size to cut them into tiles: give the dataset "
                             "a static image shape (e.g. resize or crop to a fixed size).")
        cell_h, cell_w = height // self.grid, width // self.grid
        tile = self.tile_size if self.tile_size is not None else min(cell_h, cell_w) * 64 // 75
        if tile < 1 or tile > min(cell_h, cell_w):
            raise ValueError(f"{height}x{width} images make {cell_h}x{cell_w}-pixel cells in a "
                             f"{self.grid}x{self.grid} grid, too small for {max(tile, 1)}-pixel tiles. Use "
                             "larger images, a smaller grid, or a smaller tile_size (or an encoder built "
                             "for smaller inputs).")
        return cell_h, cell_w, tile

    def pretext(self, inputs, training: bool):
        """``(puzzles [batch, T, tile, tile, C], permutation labels int32 [batch])``."""
        images = self.augmented(self._check_images(inputs), training)
        draws = self.draws.draw(tf.shape(images)[0], 1 + 2 * self.num_tiles)
        puzzles, labels = self._puzzles(images, draws)
        return self._normalized(puzzles), labels

    def _puzzles(self, images: tf.Tensor, draws: tf.Tensor):
        """Unnormalised puzzles and their labels from uniforms ``draws [batch, 1 + 2T]``."""
        cell_h, cell_w, tile = self._geometry(images)
        t = self.num_tiles
        labels = tf.minimum(tf.cast(draws[:, 0] * self.num_permutations, tf.int32), self.num_permutations - 1)
        offset_y = tf.cast(draws[:, 1:1 + t] * (cell_h - tile + 1), tf.int32)  # [batch, T], 0..cell - tile
        offset_x = tf.cast(draws[:, 1 + t:] * (cell_w - tile + 1), tf.int32)
        tiles = cut_tiles(images, self.grid, (cell_h, cell_w), tile, offset_y, offset_x)
        return tf.gather(tiles, tf.gather(self.permutations, labels), batch_dims=1), labels

    def _normalized(self, puzzles: tf.Tensor) -> tf.Tensor:
        if not self.normalize_tiles:
            return puzzles
        mean, variance = tf.nn.moments(puzzles, axes=[2, 3, 4], keepdims=True)
        return (puzzles - mean) * tf.math.rsqrt(variance + _TILE_VARIANCE_FLOOR)

    def reconstruction_panels(self, images) -> list:
        """``[(title, float32 [n, H, W, C])]`` for :func:`keras_ssl.vision.render_reconstructions`: the
        image, its puzzle (tiles in shuffled order, each in its cell) and the puzzle solved by the model
        (each tile moved to the cell the predicted permutation says it came from). The puzzles are fixed
        draws: rendering does not advance the training draws."""
        images = self._check_images(images)
        cell_h, cell_w, tile = self._geometry(images)
        draws = self.draws.uniform(tf.shape(images)[0], tf.constant([_RENDER_STEP, 0, 0], tf.int64),
                                   1 + 2 * self.num_tiles)
        puzzles, _ = self._puzzles(images, draws)
        _, logits = self._tile_features_and_logits(self._normalized(puzzles), training=False)
        solved_cells = tf.gather(self.permutations, tf.argmax(logits, axis=-1, output_type=tf.int32))
        in_order = tf.broadcast_to(tf.range(self.num_tiles), tf.shape(solved_cells))

        def layout(cells):
            canvas = np.full(images.shape, 0.5, np.float32)  # gray shows the gaps between tiles
            p, c = puzzles.numpy(), cells.numpy()
            for b in range(p.shape[0]):
                for k in range(self.num_tiles):
                    top = (c[b, k] // self.grid) * cell_h + (cell_h - tile) // 2
                    left = (c[b, k] % self.grid) * cell_w + (cell_w - tile) // 2
                    canvas[b, top:top + tile, left:left + tile] = p[b, k]
            return canvas

        return [("original", images), ("puzzle", layout(in_order)), ("solved", layout(solved_cells))]

    def ssl_loss(self, puzzles, labels, training):
        features, logits = self._tile_features_and_logits(puzzles, training)
        return self.classification_loss(logits, labels, features, "jigsaw_accuracy")

    def _tile_features_and_logits(self, puzzles: tf.Tensor, training: bool):
        """Tile features ``[batch * T, D]`` (one encoder batch) and permutation logits ``[batch, N]``."""
        features = self.encoder(tf.reshape(puzzles, [-1, *puzzles.shape[2:]]), training=training)
        joined = tf.reshape(features, [tf.shape(puzzles)[0], self.num_tiles * self.feature_dim])
        return features, self.head(joined, training=training)


# The step counter of rendered puzzles: fixed, and far from any step that training reaches.
_RENDER_STEP = 1 << 62
# Per-tile normalisation divides by sqrt(variance + this): an almost blank tile (a digit's empty corner)
# is scaled up at most 10x on the [0, 1] scale instead of turning faint noise into strokes.
_TILE_VARIANCE_FLOOR = 0.01


def cut_tiles(images: tf.Tensor, grid: int, cell: tuple, tile: int, offset_y: tf.Tensor,
              offset_x: tf.Tensor) -> tf.Tensor:
    """Tiles ``[batch, grid * grid, tile, tile, C]`` of ``images`` ``[batch, H, W, C]``, row-major.

    Tile ``k`` (cell row ``k // grid``, column ``k % grid``, cells of ``cell = (height, width)``
    pixels from the top-left corner) starts ``offset_y``/``offset_x`` ``int32 [batch, grid * grid]``
    pixels into its cell. Two batched gathers, no crop kernels (XLA compiles it).
    """
    cell_h, cell_w = cell
    t = grid * grid
    span = tf.range(tile, dtype=tf.int32)
    top = tf.constant(np.repeat(np.arange(grid), grid) * cell_h, tf.int32)
    left = tf.constant(np.tile(np.arange(grid), grid) * cell_w, tf.int32)
    rows = (top + offset_y)[:, :, None] + span  # [batch, T, tile]
    cols = (left + offset_x)[:, :, None] + span
    batch = tf.shape(images)[0]
    strips = tf.gather(images, tf.reshape(rows, [batch, t * tile]), axis=1, batch_dims=1)  # [b, T*tile, W, C]
    strips = tf.reshape(strips, [batch, t, tile, tf.shape(images)[2], images.shape[-1]])
    return tf.gather(strips, cols, axis=3, batch_dims=2)


__all__ = ["Jigsaw", "RotationPrediction", "jigsaw_permutations"]
