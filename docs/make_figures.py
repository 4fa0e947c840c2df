"""Regenerate the pictures in docs/img/ (``make figures``): offline, ~2 minutes on 2 CPU cores.

* ``digits_views.png``: digits and four augmented views each (``augment.digits``), what SimCLR sees;
* ``simclr_digits_curves.png``: SimCLR's loss and k-NN accuracy per epoch on the 1,000 unlabelled
  training digits (the tuned digits recipe, seed 0);
* ``simclr_digits_embedding.png``: the 797 test digits' features in 2-D (PCA), random-init encoder
  vs the SimCLR-pretrained one, coloured by their (unused in training) labels;
* ``fill_mask_before_after.png``: the demo's fill-mask answers before and after fine-tuning MiniLM,
  read from ``demo_output/minilm-mlm-pydoc/demo_results.json`` (written by ``make demo``; skipped
  with a message when missing).
"""

from __future__ import annotations

import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_RESULTS = os.path.join("demo_output", "minilm-mlm-pydoc", "demo_results.json")


def views_figure(data, out: str) -> None:
    import matplotlib.pyplot as plt

    from keras_ssl import augment

    grid = augment.render_views(data["train_x"][:6], augment.digits(32, seed=0), n_images=6, n_views=4)
    plt.figure(figsize=(6, 5))
    plt.imshow(grid)
    plt.axis("off")
    plt.title("digits (left) and four augment.digits views each")
    plt.savefig(out, dpi=110, bbox_inches="tight")
    plt.close()


def simclr_figures(data, curves_out: str, embedding_out: str, epochs: int) -> None:
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from keras_ssl import evaluation
    from keras_ssl.backend import keras, tf

    keras.utils.set_random_seed(0)
    random_encoder = evaluation.digits_encoder(0)
    before = evaluation.encode(random_encoder, data["test_x"])
    recipe = evaluation.DIGITS_RECIPES["simclr"]
    model = evaluation.build_digits_method("simclr", evaluation.digits_encoder(0), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]), jit_compile=True)
    knn = evaluation.KNNMonitor((data["train_x"], data["train_y"]), (data["test_x"], data["test_y"]),
                                every=2, verbose=0, encoder=model.encoder)
    start = knn.evaluate()
    images = (tf.data.Dataset.from_tensor_slices(data["train_x"]).shuffle(1000, seed=0)
              .batch(recipe["batch_size"], drop_remainder=True))
    history = model.fit(images, epochs=epochs, callbacks=[knn], verbose=0).history
    after = evaluation.encode(model.encoder, data["test_x"])

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(range(1, epochs + 1), history["loss"], marker="o")
    ax1.set(xlabel="epoch", ylabel="NT-Xent loss", title="SimCLR on 1,000 unlabelled digits")
    points = [(0, start)] + [(e + 1, a) for e, a in knn.history]
    ax2.plot(*zip(*points), marker="o", color="tab:green")
    ax2.set(xlabel="epoch", ylabel="k-NN accuracy (test)", title="k-NN accuracy of the encoder", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(curves_out, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, features, title in ((axes[0], before, f"random init (k-NN {start:.2f})"),
                                (axes[1], after, f"after SimCLR (k-NN {points[-1][1]:.2f})")):
        xy = PCA(2, random_state=0).fit_transform(features)
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=data["test_y"], cmap="tab10", s=6)
        ax.set(title=title, xticks=[], yticks=[])
    fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit")
    fig.suptitle("797 test digits, encoder features projected to 2-D (PCA)")
    fig.savefig(embedding_out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def fill_mask_figure(results_path: str, out: str) -> bool:
    import matplotlib.pyplot as plt

    if not os.path.isfile(results_path):
        print(f"skipping the fill-mask figure: {results_path} is missing (run `make demo` first)")
        return False
    with open(results_path) as f:
        results = json.load(f)
    fills, stages = results["fill_mask"], results["stages"]
    rows = [[f"{sentence}  [{expected}]", ", ".join(before), ", ".join(after)]
            for sentence, expected, before, after in zip(results["sentences"], results["expected"],
                                                         fills["pretrained"], fills["fine-tuned"])]
    metrics = {"before": stages["pretrained"], "after": stages["fine-tuned"]}
    hits = results.get("hits", {}).get("fine-tuned")
    fig, ax = plt.subplots(figsize=(11, 0.5 + 0.45 * len(rows)))
    ax.axis("off")
    labels = ["sentence [expected]", "top-3 before fine-tuning", "top-3 after"]
    table = ax.table(cellText=rows, colLabels=labels, loc="center", cellLoc="left",
                     colWidths=[0.5, 0.25, 0.25])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.4)
    ax.set_title(
        "MiniLM fill-mask on Python docs (make demo): masked accuracy "
        f"{metrics['before']['masked_accuracy']:.3f} -> {metrics['after']['masked_accuracy']:.3f}, "
        f"word accuracy {metrics['before']['word_accuracy']:.3f} -> {metrics['after']['word_accuracy']:.3f}, "
        f"perplexity {metrics['before']['perplexity']:.0f} -> {metrics['after']['perplexity']:.1f}"
        + (f"\nexpected word in the top 3 for {hits['top_3']} of {hits['sentences']} sentences after "
           f"fine-tuning (the demo's {hits['sentences']}, these 4 included)" if hits else ""),
        fontsize=10)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "img"))
    parser.add_argument("--epochs", type=int, default=20, help="SimCLR epochs (the digits recipe: 20)")
    parser.add_argument("--demo-results", default=DEMO_RESULTS)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    from keras_ssl.datasets import digits

    data = digits()
    views_figure(data, os.path.join(args.out, "digits_views.png"))
    simclr_figures(data, os.path.join(args.out, "simclr_digits_curves.png"),
                   os.path.join(args.out, "simclr_digits_embedding.png"), args.epochs)
    fill_mask_figure(args.demo_results, os.path.join(args.out, "fill_mask_before_after.png"))
    print(f"figures written to {args.out}: {sorted(os.listdir(args.out))}")


if __name__ == "__main__":
    main()
