"""keras_ssl.performance_defaults: the decision table on described hardware, and nothing changes on a CPU."""

import pytest

import keras_ssl
from keras_ssl.performance import Hardware, _cpu_info, performance_defaults

AVX2_CPU = Hardware(cpu_flags=frozenset({"avx2", "fma"}), cpu_model="AMD EPYC")
AMX_CPU = Hardware(cpu_flags=frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"}), cpu_model="Xeon")
H100 = Hardware(gpus=(("NVIDIA H100 80GB HBM3", (9, 0)),), cpu_flags=AVX2_CPU.cpu_flags)
TWO_A100 = Hardware(gpus=(("NVIDIA A100-SXM4-80GB", (8, 0)),) * 2)
T4 = Hardware(gpus=(("Tesla T4", (7, 5)),))
P100 = Hardware(gpus=(("Tesla P100-PCIE-16GB", (6, 0)),))
TODAY = ("float32", False, 1, False)  # keras_ssl's behaviour before performance_defaults existed


def settings(defaults):
    return defaults.precision, defaults.jit_compile, defaults.steps_per_execution, defaults.prefetch_to_device


@pytest.mark.parametrize("hardware,precision,expected", [
    (AVX2_CPU, None, TODAY),
    (AVX2_CPU, "auto", TODAY),
    (AMX_CPU, None, TODAY),  # bf16 only on opt-in: its learning quality is not measured yet
    (AMX_CPU, "auto", ("mixed_bfloat16", False, 1, False)),
    (H100, None, ("mixed_bfloat16", True, 8, True)),
    (TWO_A100, None, ("mixed_bfloat16", True, 8, False)),  # the strategy prefetches to each replica
    (T4, None, ("mixed_float16", True, 8, True)),
    (T4, "auto", ("mixed_float16", True, 8, True)),
    (P100, None, ("float32", True, 8, True)),
], ids=["avx2", "avx2-auto", "amx", "amx-auto", "h100", "2xa100", "t4", "t4-auto", "p100"])
def test_decision_table(hardware, precision, expected):
    defaults = performance_defaults(precision, hardware=hardware, verbose=False)
    assert settings(defaults) == expected
    assert set(defaults.reasons) == {"precision", "jit_compile", "steps_per_execution", "prefetch_to_device"}
    assert defaults.measured == (not hardware.gpus)  # GPU choices stay marked unmeasured until measured
    line = str(defaults)
    assert "\n" not in line and f"precision={expected[0]}" in line and hardware.describe() in line
    assert defaults.compile_kwargs() == {"jit_compile": expected[1], "steps_per_execution": expected[2]}


def test_amx_recommends_bf16_in_the_reason_without_applying_it():
    defaults = performance_defaults(hardware=AMX_CPU, verbose=False)
    assert defaults.precision == "float32"
    reason = defaults.reasons["precision"]
    assert "mixed_bfloat16" in reason and "precision='auto'" in reason
    assert "amx" in defaults.hardware.lower()


def test_every_choice_can_be_overridden():
    defaults = performance_defaults("mixed_float16", jit_compile=False, steps_per_execution=4,
                                    prefetch_to_device=False, hardware=H100, verbose=False)
    assert settings(defaults) == ("mixed_float16", False, 4, False)
    assert defaults.reasons["jit_compile"] == "given"
    assert "mixed_bfloat16" in defaults.reasons["precision"]  # still says what the hardware recommends


@pytest.mark.parametrize("kwargs,error,fragment", [
    (dict(precision="bf16"), ValueError, "precision must be one of"),
    (dict(precision="mixed_bfloat16 "), ValueError, "precision must be one of"),
    (dict(jit_compile="yes"), TypeError, "jit_compile must be True, False or None"),
    (dict(prefetch_to_device=1), TypeError, "prefetch_to_device must be"),
    (dict(steps_per_execution=0), ValueError, "steps_per_execution must be a positive integer"),
    (dict(steps_per_execution=2.0), ValueError, "steps_per_execution must be a positive integer"),
    (dict(steps_per_execution=True), ValueError, "steps_per_execution must be a positive integer"),
])
def test_bad_arguments_say_what_to_pass(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        performance_defaults(hardware=AVX2_CPU, verbose=False, **kwargs)


def test_cpu_flags_and_model_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 amx_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 amx_bf16\n")
    flags, model = _cpu_info(str(cpuinfo))
    assert model == "Intel Xeon" and {"avx2", "amx_bf16"} <= flags and Hardware(cpu_flags=flags).amx_bf16
    assert _cpu_info(str(tmp_path / "missing")) == (frozenset(), "CPU")


def test_applying_the_defaults_on_this_cpu_changes_nothing(capsys):
    from keras_ssl.backend import keras, tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: the CPU defaults do not apply")
    assert keras.mixed_precision.global_policy().name == "float32"
    defaults = keras_ssl.performance_defaults(apply=True)  # the lazy export, on the real hardware
    assert settings(defaults) == TODAY
    assert keras.mixed_precision.global_policy().name == "float32"
    printed = capsys.readouterr().out
    assert printed.strip() == str(defaults) and "measured" in printed


def test_apply_with_auto_on_an_amx_cpu_sets_bf16_and_prefetch_stays_on_the_host():
    from keras_ssl.backend import keras, tf

    try:
        defaults = performance_defaults("auto", hardware=AMX_CPU, apply=True, verbose=False)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    data = defaults.prefetch(tf.data.Dataset.range(5))
    assert [int(x) for x in data] == [0, 1, 2, 3, 4]
