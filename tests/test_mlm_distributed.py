"""MaskedLanguageModel gives the same numbers on one replica and on two (MirroredStrategy)."""

import json
import os
import subprocess
import sys

import pytest
from numerics import STEP_RTOL, close

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "mlm_replicas.py")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_replicas_match_one(minilm_path, optimizer):
    out = subprocess.run([sys.executable, SCRIPT, minilm_path, optimizer], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    single, multi = result["loss"]
    print(json.dumps(result))  # the measured numbers, shown with -s
    assert close(single, multi, 1e-4), result
    assert result["masked_accuracy"][0] == pytest.approx(result["masked_accuracy"][1], abs=1e-6)  # counts
    assert result["weights_moved"] > 1e-4  # the step did something
    assert result["relative_step_diff"] <= STEP_RTOL, result
