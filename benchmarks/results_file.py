"""The JSON every benchmark writes: its configuration, the machine, the load, the wall time, its results."""

from __future__ import annotations

import json
import os
import platform
import time


def write_results(path: str, args, start: float, **results) -> None:
    """Write ``{"config": vars(args), "machine", "cpus", "load_average_at_end", "total_wall_s", **results}``.

    ``start``: the ``time.perf_counter()`` the measured work began at. Creates the folder if needed.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"config": vars(args), "machine": platform.platform(), "cpus": os.cpu_count(),
                   "load_average_at_end": os.getloadavg(),
                   "total_wall_s": round(time.perf_counter() - start, 1), **results}, f, indent=2)
