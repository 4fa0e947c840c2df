"""The package layout the docs promise: modality packages never import each other, ``augment`` knows no
method, and every vision method lives in the module of its family."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keras_ssl"
MODALITIES = ("text", "vision", "tabular")


def imported_modules(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("modality", MODALITIES)
def test_modality_packages_do_not_import_each_other(modality):
    others = [f"keras_ssl.{m}" for m in MODALITIES if m != modality]
    for path in sorted((PACKAGE / modality).rglob("*.py")):
        bad = [m for m in imported_modules(path) if any(m == o or m.startswith(o + ".") for o in others)]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_augment_knows_no_method():
    methods = tuple(f"keras_ssl.{m}" for m in (*MODALITIES, "evaluation"))
    for path in sorted((PACKAGE / "augment").rglob("*.py")):
        bad = [m for m in imported_modules(path) if m.startswith(methods)]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_every_vision_method_lives_in_its_family_module():
    from keras_ssl import vision

    families = {"contrastive": {"SimCLR", "MoCo", "NNCLR"}, "self_distillation": {"BYOL", "SimSiam", "DINO"},
                "clustering": {"SwAV"}, "redundancy_reduction": {"BarlowTwins", "VICReg"},
                "masked_image_modeling": {"MAE"}, "reconstruction": {"Autoencoder", "Colorization"},
                "transformation_prediction": {"RotationPrediction", "Jigsaw"}}
    for family, names in families.items():
        for name in names:
            assert getattr(vision, name).__module__ == f"keras_ssl.vision.methods.{family}", name
    methods = {n for n in vision.__all__ if isinstance(getattr(vision, n), type)
               and issubclass(getattr(vision, n), vision.VisionSSLModel) and n != "VisionSSLModel"}
    assert methods == set().union(*families.values())
