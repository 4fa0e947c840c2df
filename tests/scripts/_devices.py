"""Set-up shared by the replica scripts: two logical CPU devices and the tests folder on ``sys.path``.

Import it first and call :func:`two_cpu_devices` before anything else touches TensorFlow: logical devices
can only be configured before the runtime starts (that is why the scripts run as subprocesses).
Importing it puts ``tests/`` on ``sys.path`` so the scripts can import ``numerics`` and the test modules.
"""

import os
import sys

from keras_ssl.backend import tf

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


def two_cpu_devices() -> list:
    """Split the physical CPU into two logical devices; returns their names ``["/cpu:0", "/cpu:1"]``."""
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    return ["/cpu:0", "/cpu:1"]
