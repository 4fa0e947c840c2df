"""One optimizer step of SCARF and VIME on 1 replica and on a 2-replica MirroredStrategy.

Prints one JSON line per method with the losses, ``relative_step_diff`` = max|w_one - w_two| /
max|w_one - w_before| (tests/numerics.py) and the corruption counters. The global batch's
corruption is drawn from global row indices and the gathered batch, so both runs see the same
corrupted rows. Run as a subprocess: the two logical CPU devices must exist before TensorFlow starts.
"""

import json
import sys

import numpy as np
from _devices import two_cpu_devices

from keras_ssl.backend import keras, tf

DEVICES = two_cpu_devices()

from numerics import relative_step_difference  # noqa: E402
from test_tabular_methods import table, tiny_encoder  # noqa: E402

from keras_ssl import tabular  # noqa: E402


def run(name, strategy, start=None):
    data = tf.data.Dataset.from_tensors(table(24, seed=2))  # one global batch of 24 rows
    with strategy.scope():
        encoder = tiny_encoder(seed=0)
        kwargs = dict(projection_units=8, temperature=0.5) if name == "SCARF" else {}
        model = getattr(tabular, name)(encoder, seed=7, **kwargs)
        if start is not None:
            model.set_weights(start)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [w.copy() for w in model.get_weights()]
    trainable_before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(data, epochs=1, verbose=0).history
    moved = max(float(np.max(np.abs(w.numpy() - b)))
                for w, b in zip(model.trainable_weights, trainable_before))
    return before, model.get_weights(), history, moved, int(model.corruption_step.numpy())


mirrored = tf.distribute.MirroredStrategy(DEVICES)
for name in sys.argv[1:] or ("SCARF", "VIME"):
    start, single_after, single, moved, single_step = run(name, tf.distribute.get_strategy())
    _, multi_after, multi, _, multi_step = run(name, mirrored, start)
    print(json.dumps({
        "method": name,
        "loss": [single["loss"][0], multi["loss"][0]],
        "relative_step_diff": relative_step_difference(start, single_after, multi_after),
        "weights_moved": moved,
        "corruption_step": [single_step, multi_step],
        **{k: [single[k][0], multi[k][0]] for k in single if k != "loss"},
    }), flush=True)
