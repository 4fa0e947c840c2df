"""Hardware-aware performance settings: precision, XLA, steps per execution, prefetch to the device.

``keras_ssl.performance_defaults()`` looks at the machine and returns :class:`PerformanceDefaults`,
each setting with the reason it was picked::

    defaults = keras_ssl.performance_defaults(apply=True)   # prints one line; sets the Keras policy
    model.compile(optimizer=..., **defaults.compile_kwargs())
    model.fit(defaults.prefetch(dataset), epochs=...)

Every setting can be overridden by argument (``performance_defaults(jit_compile=False)``).

* **CPU** (measured, ``docs/benchmarks.md``): today's behaviour, unchanged: ``float32``, no XLA (it was
  slower: 0.53x for MiniLM MLM, 1.46x vs oneDNN's 1.84x for SimCLR on an AVX2 CPU),
  ``steps_per_execution=1``, no prefetch to a device. On a CPU with AMX (``amx_bf16`` in
  ``/proc/cpuinfo``) ``mixed_bfloat16`` trained 1.77x faster (SimCLR ResNet-18) and 1.21x (MiniLM MLM),
  but its effect on what the model learns is not measured yet: it is recommended in the reason and used
  only when you opt in with ``precision="auto"``.
* **GPU** (UNMEASURED: ``bash benchmarks/gpu.sh`` measures these choices; until its table is in
  ``docs/benchmarks.md`` they follow TensorFlow's guides): compute capability >= 8.0 ``mixed_bfloat16``,
  7.x ``mixed_float16`` (Keras adds loss scaling), older ``float32``; ``jit_compile=True``;
  ``steps_per_execution=8``; prefetch to the device on one GPU (a ``tf.distribute`` strategy's
  datasets prefetch to each replica themselves). Every keras_ssl method trains under both mixed
  policies and XLA (``tests/test_precision.py``).

Importing this module does not import TensorFlow; :func:`detect_hardware` does.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
GPU_STEPS_PER_EXECUTION = 8


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the defaults are decided from: the GPUs ``((name, (major, minor)), ...)`` and the CPU."""

    gpus: Tuple[Tuple[str, Tuple[int, int]], ...] = ()
    cpu_flags: frozenset = frozenset()
    cpu_model: str = "CPU"

    @property
    def amx_bf16(self) -> bool:
        return "amx_bf16" in self.cpu_flags

    def describe(self) -> str:
        if self.gpus:
            name, (major, minor) = self.gpus[0]
            count = f"{len(self.gpus)} x " if len(self.gpus) > 1 else ""
            return f"{count}{name} (compute capability {major}.{minor})"
        return f"CPU {self.cpu_model} ({'AMX bf16' if self.amx_bf16 else 'no AMX'})"


def _cpu_info(path: str = "/proc/cpuinfo") -> Tuple[frozenset, str]:
    flags, model = frozenset(), "CPU"
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags" and not flags:
                    flags = frozenset(value.split())
                elif key.strip() == "model name" and model == "CPU":
                    model = value.strip()
    except OSError:
        pass
    return flags, model


def detect_hardware() -> Hardware:
    """The visible GPUs (``tf.config``; no memory is allocated) and this CPU's flags."""
    from keras_ssl.backend import tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = tuple(int(v) for v in (details.get("compute_capability") or (0, 0)))
        gpus.append((details.get("device_name", device.name), capability))
    flags, model = _cpu_info()
    return Hardware(tuple(gpus), flags, model)


@dataclasses.dataclass(frozen=True)
class PerformanceDefaults:
    """Recommended settings and why: ``precision`` (a Keras policy name), ``jit_compile``,
    ``steps_per_execution`` and ``prefetch_to_device``; ``reasons`` maps each name to its reason."""

    precision: str
    jit_compile: bool
    steps_per_execution: int
    prefetch_to_device: bool
    reasons: Dict[str, str]
    hardware: str
    measured: bool

    def __str__(self) -> str:
        status = "measured" if self.measured else "UNMEASURED: run benchmarks/gpu.sh"
        return (f"keras_ssl.performance_defaults: precision={self.precision}, "
                f"jit_compile={self.jit_compile}, steps_per_execution={self.steps_per_execution}, "
                f"prefetch_to_device={self.prefetch_to_device} on {self.hardware} ({status})")

    def explain(self) -> str:
        """One line per setting: its value and reason."""
        return "\n".join(f"{name}={getattr(self, name)}: {reason}" for name, reason in self.reasons.items())

    def compile_kwargs(self) -> dict:
        """``{"jit_compile": ..., "steps_per_execution": ...}`` for ``model.compile``."""
        return {"jit_compile": self.jit_compile, "steps_per_execution": self.steps_per_execution}

    def apply(self, verbose: bool = True) -> PerformanceDefaults:
        """Set the Keras global policy to ``precision`` (build models afterwards); print the choice."""
        from keras_ssl.backend import keras

        keras.mixed_precision.set_global_policy(self.precision)
        if verbose:
            print(self, flush=True)
        return self

    def prefetch(self, dataset, device: str = "/gpu:0"):
        """``dataset`` prefetched to ``device`` when ``prefetch_to_device``, else to host memory."""
        from keras_ssl.backend import tf

        if self.prefetch_to_device:
            return dataset.apply(tf.data.experimental.prefetch_to_device(device))
        return dataset.prefetch(tf.data.AUTOTUNE)


def _check(precision, jit_compile, steps_per_execution, prefetch_to_device) -> None:
    if precision is not None and precision != "auto" and precision not in POLICIES:
        raise ValueError(f"precision must be one of {', '.join(POLICIES)}, 'auto' (the hardware's "
                         f"recommendation) or None (the default); got {precision!r}.")
    for name, value in (("jit_compile", jit_compile), ("prefetch_to_device", prefetch_to_device)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be True, False or None (the default); got {value!r}.")
    if steps_per_execution is not None and (isinstance(steps_per_execution, bool)
                                            or not isinstance(steps_per_execution, int)
                                            or steps_per_execution < 1):
        raise ValueError(f"steps_per_execution must be a positive integer or None (the default); "
                         f"got {steps_per_execution!r}.")


def _recommended_precision(hardware: Hardware) -> Tuple[str, str]:
    if hardware.gpus:
        major, minor = hardware.gpus[0][1]
        if major >= 8:
            return "mixed_bfloat16", (f"compute capability {major}.{minor} >= 8.0 has bf16 tensor cores "
                                      "(float32's range: no loss scaling)")
        if major >= 7:
            return "mixed_float16", (f"compute capability {major}.{minor} has fp16 tensor cores but no bf16; "
                                     "Keras wraps the optimizer in loss scaling")
        return "float32", f"compute capability {major}.{minor} < 7.0 has no tensor cores"
    if hardware.amx_bf16:
        return "mixed_bfloat16", ("AMX bf16 CPU: mixed_bfloat16 measured 1.77x (SimCLR ResNet-18) and 1.21x "
                                  "(MiniLM MLM) there, learning quality not yet measured")
    return "float32", "CPU without AMX: no faster precision"


def performance_defaults(precision: Optional[str] = None, jit_compile: Optional[bool] = None,
                         steps_per_execution: Optional[int] = None, prefetch_to_device: Optional[bool] = None,
                         *, apply: bool = False, verbose: bool = True,
                         hardware: Optional[Hardware] = None) -> PerformanceDefaults:
    """Settings for this machine (see the module docstring); any argument given overrides its choice.

    ``precision``: ``None`` (the default: the GPU's mixed policy, ``float32`` on every CPU),
    ``"auto"`` (the hardware's recommendation, including ``mixed_bfloat16`` on AMX CPUs) or a
    policy name. ``apply=True`` sets the Keras global policy and (``verbose``) prints the one-line
    summary. ``hardware``: a :class:`Hardware` to decide for (default :func:`detect_hardware`).
    """
    _check(precision, jit_compile, steps_per_execution, prefetch_to_device)
    hardware = hardware if hardware is not None else detect_hardware()
    gpu = bool(hardware.gpus)
    recommended, why = _recommended_precision(hardware)
    reasons = {}
    if precision in POLICIES:
        reasons["precision"] = f"given (the hardware recommends {recommended}: {why})"
    elif precision == "auto" or gpu:
        reasons["precision"] = why + ("; unmeasured" if gpu else "")
        precision = recommended
    else:
        precision = "float32"
        reasons["precision"] = "CPU default, unchanged" + (
            f"; recommended: {recommended} ({why}): opt in with precision='auto'"
            if recommended != "float32" else f" ({why})")
    if jit_compile is None:
        jit_compile = gpu
        reasons["jit_compile"] = ("GPU: XLA fuses element-wise ops (MaskedLanguageModel then computes full "
                                  "logits); unmeasured" if gpu else
                                  "CPU: XLA measured slower (its convolutions skip oneDNN; MLM 0.53x)")
    else:
        reasons["jit_compile"] = "given"
    if steps_per_execution is None:
        steps_per_execution = GPU_STEPS_PER_EXECUTION if gpu else 1
        reasons["steps_per_execution"] = ("GPU: fewer host round trips per step (callbacks see every "
                                          f"{GPU_STEPS_PER_EXECUTION}th batch); unmeasured" if gpu else
                                          "CPU: steps are long, nothing to amortise")
    else:
        reasons["steps_per_execution"] = "given"
    if prefetch_to_device is None:
        prefetch_to_device = len(hardware.gpus) == 1
        reasons["prefetch_to_device"] = (
            "one GPU: the next batch is copied while this one trains; unmeasured" if prefetch_to_device else
            "several GPUs: a tf.distribute strategy prefetches to each replica" if gpu else
            "CPU: the data is already in host memory")
    else:
        reasons["prefetch_to_device"] = "given"
    measured = not gpu
    defaults = PerformanceDefaults(precision, jit_compile, steps_per_execution, prefetch_to_device, reasons,
                                   hardware.describe(), measured)
    if apply:
        defaults.apply(verbose=verbose)
    elif verbose:
        print(defaults, flush=True)
    return defaults


__all__ = ["Hardware", "PerformanceDefaults", "detect_hardware", "performance_defaults"]
