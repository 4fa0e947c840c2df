"""Every vision method gives the same step on one replica and on two (MirroredStrategy).

Same global batch, weights and seed: negatives gathered across replicas, global batch statistics,
synchronised batch norm, keys of all replicas in MoCo's queue, EMA after the step.
"""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "vision_replicas.py")


def test_two_replicas_match_one_for_every_method():
    out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert {r["method"] for r in results} == {"SimCLR", "MoCo", "BYOL", "SimSiam", "BarlowTwins", "VICReg"}
    for r in results:
        single, multi = r["loss"]
        assert abs(single - multi) <= 1e-5 * max(1.0, abs(single)), r
        assert r["weights_moved"] > 1e-3, r  # the step changed the weights
        assert r["max_weight_diff"] <= 1e-5, r
