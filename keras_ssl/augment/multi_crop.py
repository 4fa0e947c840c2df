"""Multi-crop views (SwAV, DINO): a few large *global* crops and several small *local* crops per image.

:class:`MultiCrop` holds the pipelines and returns a list of views, globals first; :func:`multi_crop`
builds SwAV's recipe (``multi_crop.dino`` / ``preset="dino"``: DINO's). Every view has its own
pipeline with its own seeds and step counters, so the views of an image are independent draws. The
ops are :mod:`keras_ssl.augment.ops` ops: per-sample counter-based randomness (one replica or many
draw the same crops for the same global sample), ``tf.function``/XLA-compatible, and their step
counters are state (:meth:`MultiCrop.build_state`) saved with a model that holds the augmentation.

Config. :meth:`MultiCrop.get_config` is JSON-able and :meth:`MultiCrop.from_config` rebuilds an
equivalent augmentation (same seeds: the same views for the same images and step counters): a preset's
factory arguments (``{"preset": "swav", ..., "seed": ...}``; ``seed=None`` draws a concrete seed at
build time so it is recorded), or else each view's pipeline as ``{"class_name", "config"}`` of
:mod:`keras_ssl.augment.ops` ops and :class:`~keras_ssl.augment.ops.Compose` (the
``Compose.get_config`` convention). Pipelines of other callables cannot be described: ``get_config``
raises a ``TypeError`` saying which.

Sizes. The papers use 224 px globals and 96 px locals (SwAV: 2x224 + 6x96; DINO: 2x224 + 8-10x96).
Scaled to small data keep the ratio ~0.4-0.5: 32x32 images (CIFAR) ``global_size=32, local_size=16``;
28x28 (MNIST) ``28, 12``; 64x64 ``64, 28``. A multi-crop encoder must accept both sizes: build it with
``input_shape=(None, None, C)`` and global pooling (e.g. ``backbones.small_cnn((None, None, 1))``).
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from keras_ssl.augment.ops import (
    OPS,
    ColorJitter,
    Compose,
    GaussianBlur,
    RandomFlip,
    RandomGrayscale,
    RandomResizedCrop,
    Solarize,
    to_float_images,
)
from keras_ssl.augment.presets import _seeds
from keras_ssl.backend import tf

Pipelines = Union[Callable, Sequence[Callable]]

SWAV_SCALES = ((0.14, 1.0), (0.05, 0.14))
DINO_SCALES = ((0.4, 1.0), (0.05, 0.4))


def _output_size(pipeline) -> Optional[int]:
    """The side of the first square :class:`RandomResizedCrop` in ``pipeline`` (``None`` if unknown)."""
    ops = pipeline.ops if isinstance(pipeline, Compose) else [pipeline]
    for op in ops:
        if isinstance(op, RandomResizedCrop) and op.size[0] == op.size[1]:
            return op.size[0]
    return None


def _ops_of(pipeline) -> list:
    return list(pipeline.ops) if isinstance(pipeline, Compose) else [pipeline]


def _leaf_ops(pipeline) -> list:
    """Every op of ``pipeline``, nested :class:`Compose` flattened (the objects that hold step state)."""
    if isinstance(pipeline, Compose):
        return [leaf for op in pipeline.ops for leaf in _leaf_ops(op)]
    return [pipeline]


def _check_describable(pipeline, where: str) -> None:
    """Raise a ``TypeError`` unless ``pipeline`` is an ``augment.ops`` op or a ``Compose`` of them."""
    if OPS.get(type(pipeline).__name__) is not type(pipeline):
        raise TypeError(
            f"MultiCrop.get_config cannot describe {where}: {pipeline!r} ({type(pipeline).__name__}) is not "
            "a keras_ssl.augment op (only RandomResizedCrop, RandomFlip, ColorJitter, ... and Compose of "
            "them serialise). Build the MultiCrop with augment.multi_crop(...) / multi_crop.dino(...) or "
            "from Compose([...]) of augment ops, or subclass MultiCrop and override get_config and "
            "from_config.")
    if isinstance(pipeline, Compose):
        for op in pipeline.ops:
            _check_describable(op, where)


def _describe(pipeline, where: str) -> Dict[str, Any]:
    _check_describable(pipeline, where)
    return {"class_name": type(pipeline).__name__, "config": pipeline.get_config()}


def _rebuild(description, where: str):
    if not isinstance(description, dict) or description.get("class_name") not in OPS:
        raise ValueError(f"{where} must be {{'class_name': <an augment op or 'Compose'>, 'config': {{...}}}} "
                         f"as MultiCrop.get_config writes it, got {description!r}.")
    return OPS[description["class_name"]].from_config(dict(description["config"]))


def _tuples(value):
    """JSON turns tuples into lists: back to (nested) tuples, e.g. ``scale=[0.14, 1.0]``."""
    if isinstance(value, dict):
        return {key: _tuples(v) for key, v in value.items()}
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _is_shared(views: List[Callable]) -> bool:
    """Whether all views of a kind call one pipeline object (the constructor's single-callable form)."""
    return len(views) > 1 and all(view is views[0] for view in views)


class MultiCrop(tf.Module):
    """``num_global`` global views ``[B, G, G, C]`` followed by ``num_local`` local views ``[B, L, L, C]``.

    ``global_ops`` / ``local_ops``: one pipeline per view (a sequence of ``num_global`` / ``num_local``
    callables, e.g. :class:`~keras_ssl.augment.ops.Compose`), or one callable shared by all views of
    the kind (each call reserves a fresh step, so its views still differ). ``global_size`` /
    ``local_size`` default to the output size of the pipelines' first ``RandomResizedCrop``.

    ``mc(images, training=True) -> list`` of ``num_global + num_local`` float32 tensors in ``[0, 1]``.
    """

    def __init__(self, global_ops: Pipelines, local_ops: Optional[Pipelines], num_global: int = 2,
                 num_local: int = 4, global_size: Optional[int] = None, local_size: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(name=name)
        if int(num_global) < 1:
            raise ValueError(f"num_global must be >= 1 (the crops that are compared to the others), "
                             f"got {num_global}.")
        if int(num_local) < 0:
            raise ValueError(f"num_local must be >= 0, got {num_local}.")
        self.num_global, self.num_local = int(num_global), int(num_local)
        self.global_views = self._per_view(global_ops, self.num_global, "global_ops")
        self.local_views = self._per_view(local_ops, self.num_local, "local_ops")
        self.global_size = global_size or _output_size(self.global_views[0])
        self.local_size = local_size or (_output_size(self.local_views[0]) if self.local_views else None)
        if self.global_size and self.local_size and self.local_size > self.global_size:
            raise ValueError(f"local_size ({self.local_size}) is larger than global_size "
                             f"({self.global_size}): local crops are the small ones. Swap them or lower "
                             "local_size.")
        # The factory arguments of multi_crop()/dino() (read-only: a tf.Module would wrap a dict).
        self._preset_config: Optional[MappingProxyType] = None

    @staticmethod
    def _per_view(pipelines, n: int, what: str) -> List[Callable]:
        if n == 0:
            return []
        if pipelines is None:
            raise ValueError(f"{what} is None but {n} views need it.")
        if isinstance(pipelines, (list, tuple)):
            if len(pipelines) != n:
                raise ValueError(f"{what} has {len(pipelines)} pipelines for {n} views: give one per view "
                                 "or a single callable shared by all.")
            return list(pipelines)
        if not callable(pipelines):
            raise TypeError(f"{what} must be a callable or a sequence of callables, got {type(pipelines)}.")
        return [pipelines] * n

    @property
    def num_views(self) -> int:
        return self.num_global + self.num_local

    def get_config(self) -> Dict[str, Any]:
        """The arguments that rebuild an equivalent MultiCrop with :meth:`from_config` (JSON-able).

        Built by :func:`multi_crop` / :func:`dino`: their arguments, ``{"preset": "swav" | "dino",
        "global_size", ..., "seed"}``. Otherwise (or if the pipelines were changed since): the
        constructor's arguments with each pipeline as ``{"class_name", "config"}`` (a pipeline shared
        by all views of a kind is written once). Raises ``TypeError`` for pipelines that are not
        ``augment`` ops / ``Compose`` of them, ``ValueError`` for ops shared in other ways.
        """
        if self._preset_config is not None:
            config = dict(self._preset_config)
            if _pipelines_config(MultiCrop.from_config(config)) == _pipelines_config(self):
                return config
        self._check_no_partly_shared_ops()
        return {"global_ops": self._kind_config(self.global_views, "global_ops"),
                "local_ops": self._kind_config(self.local_views, "local_ops"),
                "num_global": self.num_global, "num_local": self.num_local,
                "global_size": self.global_size, "local_size": self.local_size, "name": self.name}

    def _kind_config(self, views: List[Callable], what: str):
        if not views:
            return None
        if _is_shared(views):
            return _describe(views[0], f"{what} (shared by all {len(views)} views)")
        return [_describe(p, f"{what}[{i}]") for i, p in enumerate(views)]

    def _check_no_partly_shared_ops(self) -> None:
        """Rebuilt pipelines are separate objects: an op used by two of them would lose its shared counter."""
        owners: Dict[int, str] = {}  # op id -> the pipeline it was first seen in
        for kind, views in (("global_ops", self.global_views), ("local_ops", self.local_views)):
            for i, pipeline in enumerate(views[:1] if _is_shared(views) else views):
                for j, op in enumerate(_leaf_ops(pipeline)):
                    where = f"{kind}[{i}] (op {j})"
                    if owners.setdefault(id(op), where) != where:
                        raise ValueError(
                            f"MultiCrop.get_config cannot describe {op!r}: the op is shared by "
                            f"{owners[id(op)]} and {where}, and rebuilt pipelines would not share its step "
                            "counter. Give each view its own pipeline, or one pipeline shared by all views "
                            "of a kind.")

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> MultiCrop:
        """The MultiCrop that ``config`` (from :meth:`get_config`, also after a JSON round trip) describes."""
        if not isinstance(config, dict):
            raise TypeError(f"from_config takes the dict of MultiCrop.get_config, got "
                            f"{type(config).__name__}.")
        config = {key: _tuples(value) for key, value in config.items()}
        preset = config.pop("preset", None)
        if preset is not None:
            factories = {"swav": multi_crop, "dino": dino}
            if preset not in factories:
                raise ValueError(f"preset must be 'swav' or 'dino', got {preset!r}.")
            return factories[preset](**config)
        for key in ("global_ops", "local_ops"):
            value = config.get(key)
            if isinstance(value, tuple):  # one description per view
                config[key] = [_rebuild(v, f"{key}[{i}]") for i, v in enumerate(value)]
            elif value is not None:  # one pipeline shared by all views of the kind
                config[key] = _rebuild(value, key)
        return cls(**config)

    def build_state(self) -> None:
        """Create every op's step counter now (under the active strategy), e.g. in a model's ``__init__``
        so the counters are model weights, checkpointed, from the start."""
        for pipeline in self.global_views + self.local_views:
            for op in _ops_of(pipeline):
                if hasattr(op, "build_state"):
                    op.build_state()

    @tf.autograph.experimental.do_not_convert
    def __call__(self, images, training=True) -> List[tf.Tensor]:
        x, single = to_float_images(images)
        views = [view(x, training=training) for view in self.global_views + self.local_views]
        return [v[0] for v in views] if single else views

    def __repr__(self) -> str:
        return (f"MultiCrop(num_global={self.num_global}, num_local={self.num_local}, "
                f"global_size={self.global_size}, local_size={self.local_size})")


def _pipelines_config(mc: MultiCrop) -> list:
    """Every view's pipeline description (``None`` where one cannot be described), for comparisons."""
    out = []
    for view in mc.global_views + mc.local_views:
        try:
            out.append(_describe(view, "view"))
        except TypeError:
            out.append(None)
    return out


def _colour_ops(seeds: list, strength: float, jitter: Tuple[float, float, float, float], blur_p: float,
                solarize_p: float, blur: bool) -> list:
    b, c, s, h = (strength * v for v in jitter)
    ops = [RandomFlip(horizontal=True, p=0.5, seed=seeds[1]),
           ColorJitter(b, c, s, h, p=0.8, seed=seeds[2]),
           RandomGrayscale(p=0.2, seed=seeds[3])]
    if blur and blur_p > 0:
        ops.append(GaussianBlur(p=blur_p, sigma=(0.1, 2.0), seed=seeds[4]))
    if solarize_p > 0:
        ops.append(Solarize(p=solarize_p, threshold=0.5, seed=seeds[5]))
    return ops


def _build(global_size: int, local_size: int, num_global: int, num_local: int,
           global_scale: Tuple[float, float], local_scale: Tuple[float, float], seed: Optional[int],
           strength: float, blur: Optional[bool], jitter, blur_p, solarize_p, name: str) -> MultiCrop:
    if local_size > global_size:
        raise ValueError(f"local_size ({local_size}) is larger than global_size ({global_size}): local "
                         "crops are the small ones (e.g. 32/16 for 32x32 images, 28/12 for 28x28).")
    if int(num_global) < 1 or int(num_local) < 0:
        raise ValueError(f"num_global must be >= 1 and num_local >= 0, got {num_global}, {num_local}.")
    if seed is None:  # one concrete seed, recorded by get_config, from which every op's seed derives
        seed = random.SystemRandom().getrandbits(32)
    recorded = {"preset": name, "global_size": int(global_size), "local_size": int(local_size),
                "num_global": int(num_global), "num_local": int(num_local),
                "global_scale": tuple(float(v) for v in global_scale),
                "local_scale": tuple(float(v) for v in local_scale), "seed": int(seed),
                "strength": float(strength), "blur": None if blur is None else bool(blur)}
    if name == "dino":
        del recorded["strength"]
    blur = global_size >= 64 if blur is None else bool(blur)

    def pipeline(size, scale, index, blur_p, solarize_p, kind):
        seeds = _seeds(seed, 6, offset=1000 + 10 * index)
        crop = RandomResizedCrop(size, scale=scale, ratio=(3 / 4, 4 / 3), seed=seeds[0])
        return Compose([crop, *_colour_ops(seeds, strength, jitter, blur_p, solarize_p, blur)],
                       name=f"{name}_{kind}{index}")

    globals_ = [pipeline(global_size, global_scale, i, blur_p[min(i, len(blur_p) - 2)],
                         solarize_p[min(i, len(solarize_p) - 2)], "global") for i in range(num_global)]
    locals_ = [pipeline(local_size, local_scale, num_global + i, blur_p[-1], solarize_p[-1], "local")
               for i in range(num_local)]
    mc = MultiCrop(globals_, locals_, num_global, num_local, global_size, local_size, name=name)
    mc._preset_config = MappingProxyType(recorded)
    return mc


def multi_crop(global_size: int = 32, local_size: int = 16, num_global: int = 2, num_local: int = 4,
               global_scale: Tuple[float, float] = SWAV_SCALES[0],
               local_scale: Tuple[float, float] = SWAV_SCALES[1], seed: Optional[int] = None,
               strength: float = 1.0, blur: Optional[bool] = None, preset: str = "swav") -> MultiCrop:
    """SwAV's multi-crop (Caron et al. 2020): ``num_global`` crops at scale 0.14-1 to ``global_size``,
    ``num_local`` at 0.05-0.14 to ``local_size``; each then flipped (p=0.5), colour-jittered
    ``(0.8 s, 0.8 s, 0.8 s, 0.2 s)`` with p=0.8, grayscaled (p=0.2) and blurred (p=0.5, sigma 0.1-2),
    SimCLR's distortion at strength ``s``. Paper: 2x224 + 6x96 on ImageNet. Blur defaults to on
    from 64 px (``blur=None``), as SimCLR drops it on CIFAR. ``preset="dino"`` returns :func:`dino`.

    Returns a :class:`MultiCrop`; ``seed`` makes it reproducible (each view's ops get their own seeds;
    ``None`` draws one, which ``get_config`` records).
    """
    if preset == "dino":
        defaults = (SWAV_SCALES[0], SWAV_SCALES[1])
        return dino(global_size, local_size, num_global, num_local,
                    DINO_SCALES[0] if global_scale == defaults[0] else global_scale,
                    DINO_SCALES[1] if local_scale == defaults[1] else local_scale, seed, blur)
    if preset != "swav":
        raise ValueError(f"preset must be 'swav' or 'dino', got {preset!r}.")
    return _build(global_size, local_size, num_global, num_local, global_scale, local_scale, seed, strength,
                  blur, jitter=(0.8, 0.8, 0.8, 0.2), blur_p=(0.5, 0.5), solarize_p=(0.0, 0.0), name="swav")


def dino(global_size: int = 32, local_size: int = 16, num_global: int = 2, num_local: int = 4,
         global_scale: Tuple[float, float] = DINO_SCALES[0],
         local_scale: Tuple[float, float] = DINO_SCALES[1], seed: Optional[int] = None,
         blur: Optional[bool] = None) -> MultiCrop:
    """DINO's multi-crop (Caron et al. 2021, official ``DataAugmentationDINO``): globals at scale
    0.4-1, locals at 0.05-0.4; flip, colour jitter ``(0.4, 0.4, 0.2, 0.1)`` with p=0.8, grayscale
    (p=0.2); blur p=1.0 on the first global, 0.1 + solarization p=0.2 on the others, 0.5 on locals.
    Paper: 2x224 + 8 (up to 10) x96. Blur defaults to on from 64 px (``blur=None``).
    """
    return _build(global_size, local_size, num_global, num_local, global_scale, local_scale, seed, 1.0,
                  blur, jitter=(0.4, 0.4, 0.2, 0.1), blur_p=(1.0, 0.1, 0.5), solarize_p=(0.0, 0.2, 0.0),
                  name="dino")


multi_crop.dino = dino

__all__ = ["DINO_SCALES", "MultiCrop", "SWAV_SCALES", "dino", "multi_crop"]
