"""Training runs on disk: the output folder, ``--resume``/``--overwrite``, callbacks and ``run.json``.

An output folder holds the result (model files), ``run.json`` (the run's configuration, versions and
final metrics; ``"status": "running"`` until the end), ``logs/`` (TensorBoard) and, while training,
``backup/`` (``keras.callbacks.BackupAndRestore``; deleted when training ends). A killed run
continues with ``--resume`` from its last backup, at the exact batch.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from typing import Any, Dict, Iterable, List, Optional

from keras_ssl.cli.errors import UserError

RUN_JSON = "run.json"
BACKUP = "backup"
LOGS = "logs"
# Arguments that may change between an interrupted run and its --resume.
_FREE_ON_RESUME = {"resume", "overwrite", "verbose", "command", "group", "output", "head_steps", "save_steps",
                   "logging_steps"}


def has_backup(output: str) -> bool:
    """Whether ``output/backup`` holds a ``BackupAndRestore`` checkpoint."""
    for _, _, names in os.walk(os.path.join(output, BACKUP)):
        if any(name == "checkpoint" or ".index" in name for name in names):
            return True
    return False


def config_of(args) -> Dict[str, Any]:
    """The command's arguments as JSON values (the ``args`` of ``run.json``)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in ("check", "run")}


def check_output(args, result_name: str) -> None:
    """Refuse an output folder in use unless ``--overwrite`` or ``--resume`` says what to do (no TF)."""
    output = args.output
    if os.path.exists(output) and not os.path.isdir(output):
        raise UserError(f"--output {output!r} is a file, not a folder. Choose a folder path.")
    if args.resume:
        if not has_backup(output):
            finished = _read_run(output).get("status") == "finished"
            why = ("that run finished (its backup is deleted at the end)" if finished
                   else "nothing to resume: a run leaves one every --save-steps steps")
            raise UserError(f"--resume: no backup in {os.path.join(output, BACKUP)} ({why}). Start a new run "
                            f"without --resume (add --overwrite to replace {output}).")
        previous = _read_run(output).get("args", {})
        changed = [f"--{k.replace('_', '-')} {v!r} (was {previous[k]!r})" for k, v in config_of(args).items()
                   if k in previous and k not in _FREE_ON_RESUME and previous[k] != v]
        if changed:
            raise UserError(f"--resume needs the interrupted run's settings; changed: {', '.join(changed)}. "
                            f"Rerun with the settings in {os.path.join(output, RUN_JSON)}.")
        return
    if os.path.isdir(output) and os.listdir(output) and not args.overwrite:
        raise UserError(f"output folder {output!r} exists and is not empty. Pass --overwrite to replace "
                        f"its {result_name}, --resume to continue an interrupted run, or choose another "
                        "--output.")


def start_run(args) -> None:
    """Prepare the output folder (``--overwrite`` drops the old backup, logs and run.json) and write
    ``run.json`` with ``"status": "running"`` (kept as is on ``--resume``)."""
    if not args.resume:
        for name in (BACKUP, LOGS):
            shutil.rmtree(os.path.join(args.output, name), ignore_errors=True)
        os.makedirs(args.output, exist_ok=True)
        write_run(args.output, {"status": "running", "args": config_of(args), "versions": versions()})


def training_callbacks(args, output: str) -> List[Any]:
    """``BackupAndRestore`` (every ``--save-steps`` steps), a probe of the start step, TensorBoard."""
    from keras_ssl.backend import keras

    class StartStep(keras.callbacks.Callback):
        """Records ``optimizer.iterations`` once ``BackupAndRestore`` (called before it) restored."""

        start_step: Optional[int] = None

        def on_train_begin(self, logs=None):
            self.start_step = int(self.model.optimizer.iterations.numpy())

    save = int(args.save_steps) if args.save_steps else "epoch"
    return [
        keras.callbacks.BackupAndRestore(os.path.join(output, BACKUP), save_freq=save),
        StartStep(),
        keras.callbacks.TensorBoard(os.path.join(output, LOGS), update_freq=args.logging_steps,
                                    write_graph=False),
    ]


def start_step(callbacks: Iterable[Any]) -> Optional[int]:
    """The step training started from: 0, or the restored backup's step."""
    return next((c.start_step for c in callbacks if hasattr(c, "start_step")), None)


def versions() -> Dict[str, str]:
    """Versions of Python and of the installed packages a run depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("keras_ssl", "tensorflow", "tf_keras", "transformers", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def history_metrics(history) -> Dict[str, Dict[str, float]]:
    """The last epoch's ``train`` and ``validation`` (``val_*``) metrics of a Keras ``History``."""
    last = {k: float(v[-1]) for k, v in (history.history if history else {}).items() if v}
    return {"train": {k: v for k, v in last.items() if not k.startswith("val_")},
            "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")}}


def finish_run(args, record: Dict[str, Any], started: float) -> None:
    """Write the final ``run.json``: status, arguments, versions, ``record`` and the seconds taken."""
    previous = _read_run(args.output)
    backup = os.path.join(args.output, BACKUP)
    if os.path.isdir(backup) and not has_backup(args.output):
        shutil.rmtree(backup, ignore_errors=True)  # BackupAndRestore deleted its files, not the folder
    seconds = round(time.time() - started, 1)
    write_run(args.output, {"status": "finished", "command": " ".join(sys.argv[1:]) or None,
                            "args": config_of(args), "versions": versions(), **record,
                            "seconds_last_session": seconds,
                            "resumed": bool(args.resume) or bool(previous.get("resumed"))})


def write_run(output: str, content: Dict[str, Any]) -> None:
    path = os.path.join(output, RUN_JSON)
    with open(path + ".tmp", "w") as f:
        json.dump(content, f, indent=2, default=str)
        f.write("\n")
    os.replace(path + ".tmp", path)


def _read_run(output: str) -> Dict[str, Any]:
    try:
        with open(os.path.join(output, RUN_JSON)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
