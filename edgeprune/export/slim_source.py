"""Find and rebuild the slim PyTorch model named by ``--from``: an edgeprune output folder or its ``plan.json``.

The model is rebuilt by :func:`edgeprune.prune.plan.load_slim_model` (architecture from the plan, tensors from
safetensors, nothing unpickled). ``--weights`` may name a safetensors file kept elsewhere than the plan.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeprune.data.loaders import load_dataset
from edgeprune.data.tensors import calibration_indices, to_model_input
from edgeprune.errors import InputError
from edgeprune.export.artifacts import ExportedArtifact, export_artifacts
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.prune.plan import SlimPlan, load_slim_model
from edgeprune.quantize.backend import MAX_CALIBRATION_IMAGES, check_int8_target
from edgeprune.target import Target

PLAN_FILE, WEIGHTS_FILE = "plan.json", "model.safetensors"


@dataclass
class SlimSource:
    """A rebuilt slim model with what its plan says about it.

    Attributes:
        model: the slim model, in eval mode.
        plan: the parsed plan.
        plan_path: where the plan was read from.
        input_shape: (N, C, H, W) the model was exported with.
        preprocessing: its input normalisation, or None when the plan records none.
    """

    model: nn.Module
    plan: SlimPlan
    plan_path: Path
    input_shape: tuple[int, ...]
    preprocessing: Preprocessing | None

    @property
    def digest(self) -> str:
        """The plan's SHA-256 (:meth:`SlimPlan.digest`)."""
        return self.plan.digest()

    def example(self, seed: int = 0) -> torch.Tensor:
        """A seeded random NCHW input of the model's shape."""
        return torch.randn(*self.input_shape, generator=torch.Generator().manual_seed(seed))


def is_slim_source(path: Path) -> bool:
    """Whether ``path`` looks like an edgeprune output folder or a plan file (rather than an artifact)."""
    path = Path(path)
    return (path.is_dir() and (path / PLAN_FILE).is_file()) or (path.is_file() and path.suffix == ".json"
                                                                 and not path.name.endswith((".onnx.json",
                                                                                             ".xml.json",
                                                                                             ".tflite.json")))


def _read_plan(plan_path: Path) -> SlimPlan:
    try:
        return SlimPlan.from_dict(json.loads(plan_path.read_text(encoding="utf-8")), str(plan_path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{plan_path} is not valid JSON: {exc}") from None


def _preprocessing(plan: SlimPlan, origin: Path) -> Preprocessing | None:
    data = plan.preprocessing
    if data is None:
        return None
    try:
        return Preprocessing(int(data["height"]), int(data["width"]), int(data.get("channels", 3)),
                             tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{origin}: malformed preprocessing in the plan ({exc})") from None


def load_slim_source(source: str | Path, weights: str | Path | None = None,
                     allow_factory: str | None = None) -> SlimSource:
    """Rebuild the slim model from an output folder (``plan.json`` + ``model.safetensors``) or a plan file,
    with ``weights`` (a ``.safetensors`` file) instead of the folder's own when given; a plan naming a user's
    factory is refused unless ``allow_factory`` names it (:func:`~edgeprune.prune.plan.load_slim_model`)."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source} not found: expected an edgeprune output folder or a plan.json")
    plan_path = source / PLAN_FILE if source.is_dir() else source
    if not plan_path.is_file():
        raise InputError(f"{plan_path} not found: is {source} an edgeprune output folder?")
    plan = _read_plan(plan_path)
    weights_path = Path(weights) if weights is not None else plan_path.parent / WEIGHTS_FILE
    if weights_path.suffix != ".safetensors":
        raise InputError(f"--weights must be a .safetensors file written by edgeprune, got {weights_path}")
    if not weights_path.is_file():
        raise InputError(f"weights {weights_path} not found (pass --weights model.safetensors)")
    if plan_path.name == PLAN_FILE and weights_path.resolve() == (plan_path.parent / WEIGHTS_FILE).resolve():
        model = load_slim_model(plan_path.parent, allow_factory)
    else:  # load_slim_model reads one folder: give it one with the two files linked in
        with tempfile.TemporaryDirectory(prefix="edgeprune-slim-") as tmp:
            for src, name in ((plan_path, PLAN_FILE), (weights_path, WEIGHTS_FILE)):
                try:
                    os.symlink(src.resolve(), Path(tmp) / name)
                except OSError:
                    shutil.copyfile(src, Path(tmp) / name)
            model = load_slim_model(tmp, allow_factory)
    shape = tuple(int(v) for v in plan.input_shape)
    if len(shape) != 4:
        raise InputError(f"{plan_path}: input_shape must be (N, C, H, W), got {list(plan.input_shape)}")
    return SlimSource(model.eval(), plan, plan_path, shape, _preprocessing(plan, plan_path))


def export_from_source(source: str | Path, formats: str | Sequence[str], out: str | Path, *, target: Target,
                       weights: str | Path | None = None, nhwc: bool = False, force: bool = False,
                       seed: int = 0, allow_factory: str | None = None, calibration_data: str | Path | None = None,
                       calibration_images: int = MAX_CALIBRATION_IMAGES) -> list[ExportedArtifact]:
    """``edgeprune export``: rebuild the slim model named by ``source`` and export it with sidecars to ``out``.

    An INT8 ``target`` (``--precision int8``) quantizes with ``calibration_images`` images of
    ``calibration_data`` (an ImageFolder directory or ``.npz``), normalised as the plan records.

    >>> export_from_source("edgeprune-out", "onnx,tflite", "deploy", target=load_target("cpu"))  # doctest: +SKIP
    """
    check_int8_target(target)
    slim = load_slim_source(source, weights, allow_factory)
    calibration = None
    if target.precision == "int8":
        if calibration_data is None:
            raise InputError("--precision int8 needs calibration images: pass --data (an ImageFolder directory or "
                             ".npz like the model's inputs)")
        if slim.preprocessing is None:
            raise InputError(f"{slim.plan_path} records no input normalisation, so calibration images cannot be "
                             "prepared as the model expects them")
        prep = slim.preprocessing
        dataset = load_dataset(calibration_data, (prep.height, prep.width), prep.channels)
        picked = calibration_indices(len(dataset), calibration_images, seed)
        calibration = to_model_input(dataset.images[picked], prep).numpy()
    return export_artifacts(slim.model, slim.example(seed), formats, Path(out), target=target,
                            preprocessing=slim.preprocessing, plan_digest=slim.digest, nhwc=nhwc, force=force,
                            calibration=calibration)
