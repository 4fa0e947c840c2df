"""Real learning on real images for the multi-crop (SwAV, DINO) and nearest-neighbour (NNCLR) methods:
each, pretrained on scikit-learn's digits with its ``DIGITS_RECIPES`` settings, beats its random-init
encoder on the digits protocol's few-label measures (1-NN 5-shot and the shifted-test probe,
:func:`keras_ssl.evaluation.digits_protocol.digits_report`), as ``test_vision_learning.py`` checks for
the other methods. The multi-crop encoder is
``digits_encoder(seed, image_size=None)``, the very weights of the fixed-size random-init baseline.
"""

import numpy as np
import pytest

from keras_ssl.evaluation.digits_protocol import (
    MULTI_CROP_METHODS,
    digits_encoder,
    digits_multi_crop,
    digits_report,
    pretrain_on_digits,
)

SEED = 0  # conftest.digits_random_init is the seed-0 random-init encoder
# Required gains over random init (1-NN 5-shot, shifted probe), set well below what seed 0 measured
# with the same recipes (benchmarks/digits_table.py --methods swav dino nnclr):
# SwAV (Sinkhorn epsilon 0.02) +0.078 and +0.299 at seed 0 (+0.060 to +0.092 and +0.246 to +0.299 over
# seeds 0, 1, 2);
# NNCLR +0.070 and +0.248 at seed 0 (+0.009 to +0.093 and +0.163 to +0.248 over seeds 0, 1, 2; seed
# 2's random init is unusually good on 1-NN, 0.816). Runs with one seed repeat exactly on one machine.
# DINO (60 epochs: its loss first climbs to ln 256 and only escapes after ~10 epochs, see the recipe's
# comment in digits_protocol.py) +0.056 and +0.228 at seed 0 (+0.056 to +0.096 and +0.190 to +0.228 over
# seeds 0, 1, 2; seed 0's numbers are the same with TF_ENABLE_ONEDNN_OPTS=0).
MIN_GAINS = {"swav": (0.03, 0.12), "nnclr": (0.02, 0.12), "dino": (0.02, 0.12)}


def test_any_size_encoder_has_the_fixed_size_weights(digits_data):
    fixed, any_size = digits_encoder(3), digits_encoder(3, image_size=None)
    assert any_size.input_shape == (None, None, None, 1)
    for a, b in zip(fixed.get_weights(), any_size.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    images = digits_data["train_x"][:8]
    out_fixed, out_any = fixed(images, training=False).numpy(), any_size(images, training=False).numpy()
    np.testing.assert_allclose(out_any, out_fixed, rtol=1e-5, atol=1e-6 * np.abs(out_fixed).max())
    assert any_size(images[:, :16, :16], training=False).shape == (8, 128)


@pytest.mark.parametrize("bad", [0, -32, 32.0, "32"])
def test_digits_encoder_rejects_a_bad_image_size(bad):
    with pytest.raises(ValueError, match="image_size"):
        digits_encoder(0, image_size=bad)


def test_digits_multi_crop_views_have_global_and_local_sizes(digits_data):
    views = digits_multi_crop(32, num_local=3, seed=1)(digits_data["train_x"][:4])
    assert [tuple(v.shape) for v in views] == [(4, 32, 32, 1)] * 2 + [(4, 16, 16, 1)] * 3
    # each view is an independent draw of the same digits
    assert np.abs(views[0].numpy() - views[1].numpy()).mean() > 0.01
    assert all(0.0 <= float(v.numpy().min()) and float(v.numpy().max()) <= 1.0 for v in views)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(MIN_GAINS))
def test_method_beats_random_init_on_digits(method, digits_data, digits_random_init):
    model = pretrain_on_digits(method, digits_data, seed=SEED)
    if method in MULTI_CROP_METHODS:
        assert model.encoder.input_shape == (None, None, None, 1)
    losses = model.history.history["loss"]
    trained = digits_report(model.encoder, digits_data)
    print(method, "random init", digits_random_init, "trained", trained, "loss", losses[0], "->", losses[-1])
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    nn_gain, shifted_gain = MIN_GAINS[method]
    assert trained["nn_5shot"] > digits_random_init["nn_5shot"] + nn_gain
    assert trained["probe_shifted"] > digits_random_init["probe_shifted"] + shifted_gain
    assert trained["probe"] > 0.95
