"""One optimizer step of every vision method on 1 replica and on a 2-replica MirroredStrategy.

Prints one JSON line per case with the losses and ``relative_step_diff`` = max|w_one - w_two| /
max|w_one - w_before| (tests/numerics.py). Besides the six methods with their default heads, two
SimCLR cases with a user's projection head: Keras's synchronised batch norm (global statistics,
correct) and plain batch norm (per-replica statistics: a semantic slip the bound must catch). Run as
a subprocess: the two logical CPU devices must be configured before TensorFlow starts.
"""

import json
import sys

import numpy as np
from _devices import two_cpu_devices

from keras_ssl.backend import keras, tf

DEVICES = two_cpu_devices()

from numerics import relative_step_difference  # noqa: E402
from tiny_vision import TINY_HEADS, tiny_images, tiny_mae  # noqa: E402

from keras_ssl import vision  # noqa: E402
from keras_ssl.vision.backbones import small_cnn  # noqa: E402


def user_head(synchronized: bool):
    return lambda: dict(temperature=0.5, projection=keras.Sequential([
        keras.layers.Dense(16, use_bias=False),
        keras.layers.BatchNormalization(synchronized=synchronized),
        keras.layers.ReLU(),
        keras.layers.Dense(8),
    ]))


SPECS = {**TINY_HEADS, "MAE": None, "SimCLR+user_head_sync_bn": user_head(True),
         "SimCLR+user_head_plain_bn": user_head(False)}


def run(name, strategy, start=None):
    images = tiny_images(name.split("+")[0], np.random.default_rng(0), 16, 12)
    data = tf.data.Dataset.from_tensors(images)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        if name == "MAE":
            model = tiny_mae(12)
        else:
            encoder = small_cnn((12, 12, 1), width=4, sync_batchnorm=True)
            model = getattr(vision, name.split("+")[0])(encoder, augment=None, **SPECS[name]())
        if start is not None:
            model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [w.copy() for w in model.get_weights()]
    trainable_before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(data, epochs=1, verbose=0).history
    moved = max(float(np.max(np.abs(w.numpy() - b)))
                for w, b in zip(model.trainable_weights, trainable_before))
    history["moved"] = moved
    return before, model.get_weights(), history


mirrored = tf.distribute.MirroredStrategy(DEVICES)
for name in sys.argv[1:] or SPECS:
    start, single_after, single = run(name, tf.distribute.get_strategy())
    _, multi_after, multi = run(name, mirrored, start)
    print(json.dumps({
        "method": name,
        "loss": [single["loss"][0], multi["loss"][0]],
        "max_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(single_after, multi_after)),
        "relative_step_diff": relative_step_difference(start, single_after, multi_after),
        "weights_moved": single["moved"],
    }), flush=True)
