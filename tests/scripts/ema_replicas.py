"""EMA updates, weight copies and queue writes on a 2-replica MirroredStrategy; prints errors as JSON.

Run as a subprocess: the two logical CPU devices must be configured before TensorFlow starts. Every
check compares *each replica's copy* of a variable with the NumPy formula; errors of computed values
are relative to the largest expected value (exact copies must match exactly).
"""

import json

import numpy as np
from _devices import two_cpu_devices

from keras_ssl.backend import keras, tf

DEVICES = two_cpu_devices()

from keras_ssl.training import SSLModel, replica_gather  # noqa: E402
from keras_ssl.vision.ema import copy_weights, cosine_momentum, ema_update  # noqa: E402
from keras_ssl.vision.heads import MLPHead  # noqa: E402
from keras_ssl.vision.queue import MemoryQueue  # noqa: E402

strategy = tf.distribute.MirroredStrategy(DEVICES)
result = {"replicas": strategy.num_replicas_in_sync}


def net(seed):
    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Dense(5), keras.layers.BatchNormalization(), keras.layers.Dense(3)]
    model = keras.Sequential(layers)
    model.build((None, 4))
    return model


def copies(variable):
    """Every replica's value of a (mirrored or sync-on-read) variable."""
    return [np.array(v.numpy()) for v in variable.values]


def split_rows(array):
    """A per-replica value: replica ``r`` gets the ``r``-th half of ``array``'s rows."""
    halves = np.split(array, 2)
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(halves[ctx.replica_id_in_sync_group])
    )


def max_error(targets, expected):
    """Max over variables and replica copies of |copy - expected|, relative to max|expected| (the same
    formula in another order differs by rounding, which scales with the values)."""
    scale = max(float(np.max(np.abs(e))) for e in expected) or 1.0
    return max(float(np.max(np.abs(c - e))) for t, e in zip(targets, expected) for c in copies(t)) / scale


with strategy.scope():
    online, target = net(0), net(1)
    step = tf.Variable(30, dtype=tf.int64, trainable=False)
    queue = MemoryQueue(10, 3)
result["mirrored"] = all(len(w.values) == 2 for w in online.weights + target.weights + queue.weights)
result["kinds"] = sorted({type(w).__name__ for w in target.weights})

# 1. ema_update in replica context (inside strategy.run), momentum a tensor from the schedule.
t0 = [w.numpy() for w in target.weights]
o0 = [w.numpy() for w in online.weights]
m = float(cosine_momentum(30, 100, base=0.9))


@tf.function
def ema_in_replica():
    def fn():
        ema_update(target.weights, online.weights, cosine_momentum(step, 100, base=0.9))

    strategy.run(fn)


ema_in_replica()
result["momentum"] = m
result["replica_context_error"] = max_error(target.weights, [m * t + (1 - m) * o for t, o in zip(t0, o0)])

# 2. ema_update in cross-replica context (strategy scope, outside run), eager and in a tf.function.
t1 = [w.numpy() for w in target.weights]
with strategy.scope():
    ema_update(target, online, 0.5)
    tf.function(lambda: ema_update(target, online, 0.5))()
result["cross_replica_error"] = max_error(target.weights, [0.25 * t + 0.75 * o for t, o in zip(t1, o0)])

# 3. copy_weights from replica context.
strategy.run(tf.function(lambda: copy_weights(target, online)))
result["copy_error"] = max_error(target.weights, o0)


# 4. A real SSLModel.fit step: post_step runs EMA + enqueues the gathered global batch on each replica.
class Toy(SSLModel):
    def __init__(self):
        super().__init__()
        self.online, self.target = online, target
        self.memory = queue

    def compute_loss_and_stats(self, views, training):
        out = self.online(views, training=training)
        self._keys = replica_gather(tf.math.l2_normalize(out, axis=-1))
        return tf.reduce_sum(tf.square(out)) / 8.0, {}

    def post_step(self):
        ema_update(self.target.weights, self.online.weights, 0.75)
        self.memory.enqueue(self._keys)


with strategy.scope():
    copy_weights(target, net(2))  # make target differ from online again
    toy = Toy()
    toy.compile(optimizer=keras.optimizers.SGD(0.0))  # lr 0: online weights stay put
x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
t2 = [w.numpy() for w in target.weights]
q0 = queue.values().numpy()
toy.fit(tf.data.Dataset.from_tensors(x), epochs=1, verbose=0)
o2 = [w.numpy() for w in online.weights]
trainable = [i for i, w in enumerate(target.weights) if w.trainable]
result["fit_ema_error"] = max_error(
    [target.weights[i] for i in trainable], [0.75 * t2[i] + 0.25 * o2[i] for i in trainable]
)
# BN moving statistics are sync-on-read: one copy per replica, which saw different local batches;
# each replica's target copy follows its own online copy.
moving = [i for i, w in enumerate(target.weights) if not w.trainable]
result["fit_moving_stats_differ"] = max(
    float(np.max(np.abs(np.subtract(*copies(online.weights[i]))))) for i in moving
)
result["fit_moving_stats_error"] = max(
    float(np.max(np.abs(t_copy - (0.75 * t2[i] + 0.25 * o_copy))))
    for i in moving
    for t_copy, o_copy in zip(copies(target.weights[i]), copies(online.weights[i]))
) / max(float(np.max(np.abs(w))) for i in moving for w in copies(online.weights[i]))
# The step wrote the 8 gathered (unit-norm) keys into rows 0..7 of every replica's copy.
queue_copies = copies(queue.queue)
result["queue_replicas_equal"] = float(np.max(np.abs(queue_copies[0] - queue_copies[1])))
result["queue_untouched_rows_error"] = float(np.max(np.abs(queue_copies[0][8:] - q0[8:])))
result["queue_row_norms"] = np.linalg.norm(queue_copies[0][:8], axis=1).tolist()
result["pointers"] = [int(p) for p in copies(queue.pointer)]

# 5. Wrapping enqueue in replica context: 2 replicas x 4 rows gathered = 8 rows into a queue of 10.
with strategy.scope():
    ring = MemoryQueue(10, 2)


@tf.function
def enqueue(values):
    def fn(local):
        ring.enqueue(replica_gather(local))

    strategy.run(fn, args=(values,))


batches = []
for k in range(3):  # 24 rows written: pointer 0 -> 8 -> 6 -> 4
    rows = np.arange(16 * k, 16 * k + 16, dtype=np.float32).reshape(8, 2)
    batches.append(rows)
    enqueue(split_rows(rows))
expected = np.zeros((10, 2), np.float32)
position = 0
for rows in batches:
    for row in rows:
        expected[position % 10] = row
        position += 1
result["ring_error"] = max(float(np.max(np.abs(c - expected))) for c in copies(ring.queue))
result["ring_pointers"] = [int(p) for p in copies(ring.pointer)]


# 6. MLPHead's synchronized BN uses global-batch statistics: two replicas on halves give the outputs
#    of one device on the whole batch; unsynchronized BN does not.
features = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32) * np.arange(1, 5)
features[4:] += 3.0  # the two halves have different statistics
for sync in (True, False):
    keras.utils.set_random_seed(3)
    single = MLPHead((6,), 3, synchronized_bn=sync)
    full = single(features, training=True).numpy()
    with strategy.scope():
        head = MLPHead((6,), 3, synchronized_bn=sync)
        head(features[:1])
        head.set_weights(single.get_weights())

    @tf.function
    def forward(values, head=head):
        return strategy.run(lambda local: head(local, training=True), args=(values,))

    outputs = strategy.experimental_local_results(forward(split_rows(features)))
    split = np.concatenate([v.numpy() for v in outputs])
    result[f"head_sync_{sync}_error"] = float(np.max(np.abs(split - full)) / np.max(np.abs(full)))

print(json.dumps(result))
