"""keras_ssl.backend's TensorFlow start-up options: oneDNN CPU kernels on x86-64 unless the user says no."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import json, sys
{first}
from tensorflow.python.util import _pywrap_util_port
print(json.dumps({{"onednn": bool(_pywrap_util_port.IsMklEnabled())}}))
"""


def _onednn_after(first: str, **env: str) -> bool:
    environ = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], capture_output=True,
                          text=True, timeout=300, env={**environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["onednn"]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="keras_ssl turns oneDNN on only on x86-64; elsewhere TensorFlow's default stands")
def test_onednn_is_on_when_keras_ssl_comes_first_and_the_user_can_say_no():
    tensorflow_default = _onednn_after("import tensorflow")
    assert _onednn_after("import keras_ssl")
    assert not _onednn_after("import keras_ssl", TF_ENABLE_ONEDNN_OPTS="0")
    # TensorFlow imported first: its own choice stands (it reads the variable once, at import).
    assert _onednn_after("import tensorflow; import keras_ssl") == tensorflow_default
