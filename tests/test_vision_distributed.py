"""Every vision method gives the same step on one replica and on two (MirroredStrategy).

Same global batch, weights and seed: negatives gathered across replicas, global batch statistics,
synchronised batch norm, keys of all replicas in MoCo's queue, EMA after the step, per-example losses
of the reconstruction pretexts averaged over the global batch, the same corruption draws per image.
The weight bound is relative to the step (tests/numerics.py), and a head with per-replica batch norm
shows it catches a slip.
"""

import json
import os
import subprocess
import sys

from numerics import STEP_RTOL, close

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "vision_replicas.py")
METHODS = {"SimCLR", "MoCo", "NNCLR", "BYOL", "SimSiam", "DINO", "SwAV", "BarlowTwins", "VICReg",
           "Autoencoder", "RotationPrediction", "Colorization", "MAE", "Jigsaw"}


def test_two_replicas_match_one_for_every_method():
    out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = {r["method"]: r for r in (json.loads(line) for line in out.stdout.splitlines()
                                        if line.startswith("{"))}
    print(json.dumps(results))  # the measured numbers, shown with -s
    assert set(results) == METHODS | {"SimCLR+user_head_sync_bn", "SimCLR+user_head_plain_bn"}
    for name, r in results.items():
        assert r["weights_moved"] > 1e-3, r  # the step changed the weights
        if name == "SimCLR+user_head_plain_bn":
            continue
        single, multi = r["loss"]
        assert close(single, multi, 1e-4), r
        assert r["relative_step_diff"] <= STEP_RTOL, r
    # Per-replica batch-norm statistics change the step by far more than rounding: the bound catches it.
    slip = results["SimCLR+user_head_plain_bn"]
    assert slip["relative_step_diff"] > 10 * STEP_RTOL, slip
