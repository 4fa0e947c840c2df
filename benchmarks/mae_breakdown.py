"""Where an MAE training step spends its time: the step cut into compiled pieces, same run.

``vision.MAE``'s step is rebuilt from its parts, each piece a ``tf.function`` timed on one batch:

* ``noise``: the counter-based uniforms that pick each image's visible patches;
* ``targets``: the patchified, per-patch normalised pixels (``norm_pix_loss``);
* ``encoder``: Hugging Face's ViT on the visible patches (masking inside), forward only;
* ``encoder+decoder``: plus the decoder over all patches, forward only;
* ``forward+loss``: plus the global-batch masked MSE;
* ``gradients``: forward, loss and backward pass (every gradient summed, so none is pruned);
* ``step``: gradients and the Adam update, what ``MAE.fit`` runs per batch (no metrics);
* ``hf_forward+loss`` and ``hf_gradients``: the same through ``TFViTMAEForPreTraining.call`` and its
  built-in loss, the documented path;
* ``fused_gradients``: what replacing Hugging Face's transformer blocks would buy: the same forward
  (same weights, masks and loss) with each block rewritten by hand: one matmul for query, key and value
  instead of three, one transpose for the three heads' layouts, 2-D matmuls for every dense layer
  (:func:`fused_forward`; its gradients equal ``gradients``' to float precision).

Every piece is called ``--calls`` times after two warm-up calls, interleaved over ``--rounds`` rounds
(odd rounds in reverse order, so no piece always runs first); the median is reported, with its share of
``step``. ``--pieces`` times only some pieces (an A/B of ``gradients`` and ``hf_gradients``, say).
Differences between rows estimate the cost of one part (e.g. ``gradients - forward+loss`` is the
backward pass). ``--ops`` also runs each timed piece ``--calls`` times under TensorFlow's profiler and
reports the kernel time per call of each op type (summed over the threads that ran them, so a row can
exceed its share of the wall time); ``--jit`` compiles every piece with XLA. Run:
``python benchmarks/mae_breakdown.py`` (``--size small``, ``--batch``; ``--quick`` for a smoke run);
writes ``benchmarks/results/mae_breakdown.json``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import math
import os
import statistics
import tempfile
import time

import numpy as np
from results_file import write_results


def fused_forward(model, pixel_values, noise):
    """``(predicted patches [batch, L, p * p * C], mask [batch, L])`` of ``TFViTMAEForPreTraining``
    ``model``, its transformer blocks rewritten with fused query/key/value matmuls (same weights)."""
    from keras_ssl.backend import tf

    config = model.config

    def norm(layer, x):
        mean, variance = tf.nn.moments(x, [-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + layer.epsilon) * layer.gamma + layer.beta

    def dense(layer, x):
        return tf.matmul(x, layer.kernel) + layer.bias

    def block(layer, x, heads):
        batch, tokens, width = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
        attention = layer.attention.self_attention
        kernel = tf.concat([attention.query.kernel, attention.key.kernel, attention.value.kernel], 1)
        bias = tf.concat([attention.query.bias, attention.key.bias, attention.value.bias], 0)
        flat = tf.reshape(x, (-1, width))
        qkv = tf.matmul(norm(layer.layernorm_before, flat), kernel) + bias
        qkv = tf.transpose(tf.reshape(qkv, (batch, tokens, 3, heads, width // heads)), (2, 0, 3, 1, 4))
        query, key, value = tf.unstack(qkv)  # not qkv[i]: a strided slice's gradient costs more than this
        probabilities = tf.nn.softmax(tf.matmul(query / math.sqrt(width // heads), key, transpose_b=True))
        attended = tf.reshape(tf.transpose(tf.matmul(probabilities, value), (0, 2, 1, 3)), (-1, width))
        flat = flat + dense(layer.attention.dense_output.dense, attended)
        hidden = layer.intermediate.intermediate_act_fn(dense(layer.intermediate.dense,
                                                              norm(layer.layernorm_after, flat)))
        return tf.reshape(flat + dense(layer.vit_output.dense, hidden), (batch, tokens, width))

    embeddings = model.vit.embeddings
    positions = embeddings.position_embeddings
    patches = embeddings.patch_embeddings(pixel_values) + positions[:, 1:, :]
    visible, mask, ids_restore = embeddings.random_masking(patches, noise)
    cls = tf.tile(embeddings.cls_token + positions[:, :1, :], (tf.shape(visible)[0], 1, 1))
    x = tf.concat([cls, visible], 1)
    for layer in model.vit.encoder.layer:
        x = block(layer, x, config.num_attention_heads)
    decoder = model.decoder
    x = dense(decoder.decoder_embed, norm(model.vit.layernorm, x))
    masked = tf.tile(decoder.mask_token, (tf.shape(x)[0], tf.shape(ids_restore)[1] + 1 - tf.shape(x)[1], 1))
    unshuffled = tf.gather(tf.concat([x[:, 1:, :], masked], 1), ids_restore, axis=1, batch_dims=1)
    x = tf.concat([x[:, :1, :], unshuffled], 1) + decoder.decoder_pos_embed
    for layer in decoder.decoder_layers:
        x = block(layer, x, config.decoder_num_attention_heads)
    return dense(decoder.decoder_pred, norm(decoder.decoder_norm, x))[:, 1:, :], mask


def op_times(fn, calls: int) -> dict:
    """``{op type: kernel ms per call}`` of compiled ``fn`` over ``calls`` profiled calls."""
    from keras_ssl.backend import tf

    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as error:  # a private module: say so rather than fail later
        raise SystemExit(f"--ops needs TensorFlow's profiler protobufs ({error}).") from None
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(calls):
            np.asarray(fn())
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the threads that run kernels
                continue
            for event in line.events:
                kind = plane.event_metadata[event.metadata_id].name.split(":")[-1]
                if kind != "Process":  # the enclosing executor span, not a kernel
                    totals[kind] += event.duration_ps / 1e9 / calls
    return dict(totals)


def pieces(size: str, image_size: int, patch_size: int, batch: int, jit: bool = False) -> dict:
    """``{name: zero-argument compiled function}`` for one batch of random colour images."""
    from keras_ssl import vision
    from keras_ssl.backend import keras, tf
    from keras_ssl.vision.methods.masked_image_modeling import _pixel_values

    keras.utils.set_random_seed(0)
    mae = vision.MAE.from_config(image_size, patch_size, num_channels=3, size=size, seed=0)
    images = tf.constant(np.random.default_rng(0).random((batch, image_size, image_size, 3)), tf.float32)
    optimizer = keras.optimizers.Adam(1e-4)
    model = mae.hf_model

    def noise():
        return mae.mask_noise.draw(batch, mae.num_patches)

    fixed_noise = noise()

    def loss():
        return mae.ssl_loss(images, fixed_noise, training=True)[0]  # what MAE's step computes

    def gradients():
        with tf.GradientTape() as tape:
            value = loss()
        return value, tape.gradient(value, model.trainable_variables)

    def used(value, grads):
        """``value``, made to depend on every gradient: a traced function prunes what it does not return."""
        return value + 0.0 * tf.add_n([tf.reduce_sum(g) for g in grads])

    def step():
        value, grads = gradients()
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return value

    def hf_gradients():
        with tf.GradientTape() as tape:
            value = model(pixel_values=_pixel_values(images), noise=fixed_noise, training=True).loss
        return value, tape.gradient(value, model.trainable_variables)

    def fused_gradients():
        with tf.GradientTape() as tape:
            value = mae.masked_patch_loss(images, *fused_forward(model, _pixel_values(images), fixed_noise))
        return value, tape.gradient(value, model.trainable_variables)

    out = {
        "noise": noise,
        "targets": lambda: mae.targets(images),
        "encoder": lambda: model.vit(pixel_values=_pixel_values(images), noise=fixed_noise,
                                     training=True).last_hidden_state,
        "encoder+decoder": lambda: mae.forward(images, fixed_noise, training=True)[0],
        "forward+loss": loss,
        "gradients": lambda: used(*gradients()),
        "step": step,
        "hf_forward+loss": lambda: model(pixel_values=_pixel_values(images), noise=fixed_noise,
                                         training=True).loss,
        "hf_gradients": lambda: used(*hf_gradients()),
        "fused_gradients": lambda: used(*fused_gradients()),
    }
    step()  # builds the optimizer's slots outside the traced function
    compiled = {name: tf.function(fn, jit_compile=jit) for name, fn in out.items()}
    compiled["fused_gradients"].largest_difference = lambda: _largest_difference(
        model.trainable_variables, gradients()[1], fused_gradients()[1])
    return compiled


def _largest_difference(variables, reference, other) -> float:
    """Largest ``|a - b| / |a|`` over the variables' gradients, leaving out the attention's key biases
    (adding one constant to every score of a query leaves its softmax unchanged: zero gradient in exact
    arithmetic, so their relative difference is float noise over float noise)."""
    from keras_ssl.backend import tf

    return max(float(tf.norm(a - b) / tf.norm(a)) for v, a, b in zip(variables, reference, other)
               if "key/bias" not in v.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pieces", nargs="+", default=None, help="only these pieces (default: all)")
    parser.add_argument("--jit", action="store_true", help="compile every piece with XLA")
    parser.add_argument("--ops", action="store_true", help="also profile each piece's kernel time by op type")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results",
                                                         "mae_breakdown.json"))
    args = parser.parse_args()
    if args.quick:
        args.calls, args.rounds = 2, 1
    from keras_ssl.quiet import quiet

    quiet()
    fns = pieces(args.size, args.image_size, args.patch_size, args.batch, jit=args.jit)
    if args.pieces:
        unknown = sorted(set(args.pieces) - set(fns))
        if unknown:
            parser.error(f"unknown pieces {unknown}; choose from {list(fns)}")
        fns = {name: fn for name, fn in fns.items() if name in args.pieces}
    for fn in fns.values():  # trace and warm up
        fn(), fn()
    seconds = {name: [] for name in fns}
    start = time.perf_counter()
    for round_ in range(args.rounds):
        for name, fn in (list(fns.items())[::-1] if round_ % 2 else fns.items()):
            for _ in range(args.calls):
                t = time.perf_counter()
                np.asarray(fn())  # waits for the result
                seconds[name].append(time.perf_counter() - t)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    lines = ["| piece | median ms | share of step |", "|---|---|---|"]
    for name, value in median.items():
        share = f"{value / median['step']:.0%}" if "step" in median else "–"
        lines.append(f"| {name} | {value * 1000:.1f} | {share} |")
    table = "\n".join(lines)
    print(table)
    results = {"median_s": median, "table": table}
    if "fused_gradients" in fns:
        results["fused_largest_relative_gradient_difference"] = fns["fused_gradients"].largest_difference()
        print(f"fused blocks against Hugging Face's: largest relative gradient difference "
              f"{results['fused_largest_relative_gradient_difference']:.1e}")
    if args.ops:
        ops = {name: op_times(fn, args.calls) for name, fn in fns.items()}
        kinds = sorted({k for t in ops.values() for k in t},
                       key=lambda k: -max(t.get(k, 0.0) for t in ops.values()))
        lines = ["| op | " + " | ".join(f"{name} ms" for name in ops) + " |", "|---|" + "---|" * len(ops)]
        lines += [f"| {k} | " + " | ".join(f"{t.get(k, 0.0):.1f}" for t in ops.values()) + " |"
                  for k in kinds[:15]]
        lines.append("| all kernels | " + " | ".join(f"{sum(t.values()):.1f}" for t in ops.values()) + " |")
        results.update(ops_ms=ops, ops_table="\n".join(lines))
        print(results["ops_table"])
    write_results(args.output, args, start, **results)


if __name__ == "__main__":
    main()
