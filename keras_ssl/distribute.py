"""Pick a ``tf.distribute`` strategy for the hardware at hand, and explain it.

``strategy = keras_ssl.distribute.auto_strategy()`` picks, in order:

1. a ``TPUStrategy`` when a TPU is found (``TPU_NAME``/``COLAB_TPU_ADDR`` set, or a TPU VM);
2. ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names more than one worker;
3. ``MirroredStrategy`` over all local GPUs when there are two or more;
4. ``OneDeviceStrategy`` on the single GPU;
5. otherwise the default strategy (CPU).

It prints one line saying what it picked and why. Every keras_ssl method is exact under all of
them: the loss, gradients, negatives, batch statistics and masked-token counts are those of the
**global** batch (see ``docs/distributed.md``). Build and ``compile`` the model inside
``with strategy.scope():`` and batch the data with the global batch size
(:func:`global_batch_size`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Optional

from keras_ssl.backend import tf

logger = logging.getLogger(__name__)

_TPU_ENV = ("TPU_NAME", "COLAB_TPU_ADDR", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_WORKER_ID")


def _tf_config_workers() -> int:
    """How many workers (``worker`` + ``chief`` tasks) ``TF_CONFIG`` names; 0 if unset or invalid."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {}) or {}
    except (ValueError, AttributeError):
        logger.warning("TF_CONFIG is not valid JSON; ignoring it.")
        return 0
    return len(cluster.get("worker", []) or []) + len(cluster.get("chief", []) or [])


def _tpu_hint(tpu: Optional[str]) -> Optional[str]:
    """The TPU address to try, or ``None`` when nothing suggests a TPU (never probes the network)."""
    if tpu is not None:
        return tpu
    for name in _TPU_ENV:
        if os.environ.get(name):
            return os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR", "")
    if os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"):  # a Cloud TPU VM
        return "local"
    return None


def _try_tpu(tpu: Optional[str]):
    address = _tpu_hint(tpu)
    if address is None:
        return None, "no TPU found"
    try:
        if address and ":" in address and not address.startswith("grpc://") and address != "local":
            address = "grpc://" + address  # COLAB_TPU_ADDR is host:port
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address or None)
        if address != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver), f"a TPU resolved at {address or 'the default address'}"
    except Exception as err:  # noqa: BLE001 - any failure means "no usable TPU"
        return None, f"TPU hint {address!r} did not resolve ({type(err).__name__}: {err})"


def auto_strategy(verbose: bool = True, tpu: Optional[str] = None) -> tf.distribute.Strategy:
    """The best ``tf.distribute.Strategy`` for this machine/cluster (see the module docstring).

    ``tpu``: a TPU name or ``grpc://`` address to try first (default: from the environment).
    Safe on CPU-only machines: the TPU is tried only when something points at one, and any
    failure falls through to the next choice. With ``verbose`` it prints one line saying what it
    picked and why (it is always logged at INFO level).
    """
    strategy, reason = _try_tpu(tpu)
    if strategy is None:
        tpu_note = reason
        workers = _tf_config_workers()
        gpus = tf.config.list_physical_devices("GPU")
        if workers > 1:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            reason = f"TF_CONFIG names {workers} workers"
        elif len(gpus) >= 2:
            strategy = tf.distribute.MirroredStrategy()
            reason = f"{len(gpus)} local GPUs" + (" (TF_CONFIG names only one worker)" if workers else "")
        elif len(gpus) == 1:
            strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
            reason = "one local GPU"
        else:
            strategy = tf.distribute.get_strategy()
            reason = "no GPU" + (", TF_CONFIG names only one worker" if workers else "") + ", " + tpu_note
    line = f"keras_ssl.auto_strategy: {strategy_name(strategy)} because {reason}; "
    line += explain_strategy(strategy)
    logger.info(line)
    if verbose:
        print(line, flush=True)
    return strategy


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name of ``strategy``'s kind (TF's classes have internal names such as
    ``CollectiveAllReduceStrategy`` for ``MultiWorkerMirroredStrategy``)."""
    for name in ("TPUStrategy", "MultiWorkerMirroredStrategy", "MirroredStrategy", "OneDeviceStrategy"):
        if isinstance(strategy, getattr(tf.distribute, name)):
            return name
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return "default strategy"
    return type(strategy).__name__


def _devices(strategy: tf.distribute.Strategy) -> list:
    extended = strategy.extended
    for attribute in ("worker_devices", "_devices"):
        try:
            devices = getattr(extended, attribute)
            if devices:
                return list(devices)
        except (AttributeError, RuntimeError, ValueError):
            continue
    return ["/cpu:0"] if not tf.config.list_physical_devices("GPU") else ["default device"]


def explain_strategy(strategy: Optional[tf.distribute.Strategy] = None) -> str:
    """One line: replicas, devices, and how to size the batch under ``strategy``."""
    strategy = strategy or tf.distribute.get_strategy()
    n = strategy.num_replicas_in_sync
    devices = _devices(strategy)
    shown = ", ".join(devices[:4]) + (f", ... ({len(devices)} in all)" if len(devices) > 4 else "")
    workers = _tf_config_workers() if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1
    text = f"{n} replica{'s' if n != 1 else ''} in sync on {shown}"
    if workers > 1:
        text += f" (this worker's devices; {workers} workers)"
    text += (f"; batch the dataset with the GLOBAL batch size = per-replica batch x {n} "
             f"(e.g. global_batch_size(64) = {64 * n}); keras_ssl losses and statistics are those of "
             "the global batch")
    if n > 1:
        text += "; scale the learning rate for the global batch (docs/distributed.md)"
    return text


def global_batch_size(per_replica: int, strategy: Optional[tf.distribute.Strategy] = None) -> int:
    """``per_replica * strategy.num_replicas_in_sync`` (the current strategy by default)."""
    if int(per_replica) != per_replica or per_replica < 1:
        raise ValueError(f"per_replica must be a positive integer; got {per_replica!r}.")
    strategy = strategy or tf.distribute.get_strategy()
    return int(per_replica) * int(strategy.num_replicas_in_sync)


__all__ = ["auto_strategy", "explain_strategy", "global_batch_size", "strategy_name"]
