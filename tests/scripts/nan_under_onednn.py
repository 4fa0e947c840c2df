"""A NaN image under oneDNN CPU kernels (forced on) must still stop ``fit`` with NonFiniteLossError.

TensorFlow turns oneDNN on by default on AVX-512/AMX CPUs; its fused batch-norm + ReLU maps NaN to 0,
so the forward pass (and the loss) can stay finite. Prints one JSON line:
``{"onednn": bool, "forward_loss_finite": bool, "raised": str, "weights_finite": bool}``.
"""

import json
import os

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"

import numpy as np  # noqa: E402
from tensorflow.python.util import _pywrap_util_port  # noqa: E402

from keras_ssl import vision  # noqa: E402
from keras_ssl.backend import keras, tf  # noqa: E402
from keras_ssl.training.base import NonFiniteLossError  # noqa: E402
from keras_ssl.vision import heads as H  # noqa: E402
from keras_ssl.vision.backbones import small_cnn  # noqa: E402

keras.utils.set_random_seed(0)
images = np.random.default_rng(0).random((16, 12, 12, 1)).astype(np.float32)
images[0, 0, 0, 0] = np.nan
model = vision.SimCLR(small_cnn((12, 12, 1), width=4), projection=H.simclr_projection(8, 16))
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))


@tf.function  # graph mode, as in fit: grappler's oneDNN fusions apply to graphs
def forward_loss(x):
    return model.compute_loss_and_stats((x, x), training=True)[0]


forward_finite = bool(np.isfinite(forward_loss(tf.constant(images)).numpy()))
raised = "nothing"
try:
    model.fit(tf.data.Dataset.from_tensors(images), epochs=1, verbose=0)
except NonFiniteLossError as err:
    raised = f"NonFiniteLossError: {err}"
weights_finite = all(np.isfinite(w.numpy()).all() for w in model.optimized_variables())
print(json.dumps({"onednn": bool(_pywrap_util_port.IsMklEnabled()), "forward_loss_finite": forward_finite,
                  "raised": raised, "weights_finite": weights_finite}))
