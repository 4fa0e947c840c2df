"""Serve a keras_ssl export with TensorFlow alone: ``python _serve.py EXPORT_DIR INPUT... [--verbose]``.

Run as a script (never imported as part of keras_ssl) by ``keras-ssl serve-check``: it imports
TensorFlow and NumPy only, like a server. A text export (``text`` input) answers sentences with the
top-k tokens of each mask; an image export (``images`` input) answers image files with the shape and
norm of their embedding. Exit code 1 with one ``keras-ssl: error:`` line for bad inputs.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# This folder is sys.path[0] when run as a script; its modules must not shadow anything TensorFlow imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]


def _load_quiet():
    """keras_ssl/quiet.py loaded by path (stdlib only), without importing the keras_ssl package."""
    path = os.path.join(HERE, os.pardir, "quiet.py")
    spec = importlib.util.spec_from_file_location("_keras_ssl_quiet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fail(message: str) -> None:
    print(f"keras-ssl: error: {message}", file=sys.stderr)
    sys.exit(1)


def _label(out, row: int) -> str:
    """A classifier export's answer for ``row``: its class (name) and probability."""
    if "class_name" in out:
        label = out["class_name"].numpy()[row].decode("utf-8")
    else:
        label = int(out["label"].numpy()[row])
    return f"label {label} (p={float(out['probabilities'].numpy()[row].max()):.3f})"


def serve_text(fn, sentences) -> None:
    import tensorflow as tf

    out = fn(text=tf.constant(sentences))
    for row, sentence in enumerate(sentences):
        print(sentence)
        if "top_k_tokens" not in out:  # a text classifier
            print(f"  {_label(out, row)}")
            continue
        tokens, scores = out["top_k_tokens"].numpy()[row], out["top_k_scores"].numpy()[row]
        masks = int(out["num_masks"].numpy()[row])
        if masks == 0:
            print("  (no mask token)")
        for m in range(masks):
            best = ", ".join(f"{t.decode('utf-8')} ({s:.3f})" for t, s in zip(tokens[m], scores[m]))
            print(f"  mask {m + 1}: {best}")


def serve_images(fn, paths, channels: int) -> None:
    import numpy as np
    import tensorflow as tf

    for path in paths:
        if not os.path.isfile(path):
            fail(f"INPUT {path!r}: no such image file.")
        try:
            image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            fail(f"INPUT {path!r} is not an image TensorFlow can decode (jpeg, png, bmp, gif).")
        out = fn(images=tf.cast(image, tf.uint8)[None])
        answers = []
        if "embedding" in out:
            embedding = out["embedding"].numpy()[0]
            norm = float(np.linalg.norm(embedding))
            answers.append(f"embedding shape {list(embedding.shape)}, norm {norm:.4f}")
        if "label" in out:  # an image classifier
            answers.append(_label(out, 0))
        print(f"{path}: {'; '.join(answers)}")


def main(argv) -> None:
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    if len(argv) < 2:
        fail("usage: _serve.py EXPORT_DIR INPUT... [--verbose]")
    export_dir, inputs = argv[0], argv[1:]
    if verbose:
        import tensorflow as tf
    else:
        quiet = _load_quiet()
        quiet.set_quiet_environment()
        with quiet.filtered_stderr():
            import tensorflow as tf

            tf.config.list_logical_devices()
        quiet.quiet_python_logs()
    already = set(sys.modules)  # TensorFlow itself may import tf_keras (TF_USE_LEGACY_KERAS): fine
    loaded = tf.saved_model.load(export_dir)
    fn = loaded.signatures["serving_default"]
    spec = fn.structured_input_signature[1]
    if "text" in spec:
        serve_text(fn, inputs)
    elif "images" in spec:
        serve_images(fn, inputs, int(spec["images"].shape[-1]))
    else:
        fail(f"{export_dir!r} serves {sorted(spec)}, not raw text or images (a text export made with "
             "include_strings=False takes token ids: call its from_token_ids signature).")
    imported = sorted(m for m in ("keras_ssl", "transformers", "tf_keras")
                      if m in sys.modules and m not in already)
    if imported:
        fail(f"serving imported {imported}; it must need TensorFlow only.")


if __name__ == "__main__":
    main(sys.argv[1:])
