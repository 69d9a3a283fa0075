"""``--model timm:NAME``: timm's models built offline, preprocessing from their pretrained configuration, weights
only from ``--weights``, a received folder naming one loads without ``--allow-factory``."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("timm", reason="the [timm] extra (timm) is not installed")

from edgeprune.errors import ModelLoadError  # noqa: E402
from edgeprune.models.zoo import build_architecture, is_factory_spec  # noqa: E402
from edgeprune.prune.plan import SlimPlan, load_slim_model, module_shapes  # noqa: E402
from edgeprune.train.default_weights import load_model  # noqa: E402


def test_a_timm_model_builds_with_its_classes_and_preprocessing() -> None:
    bundle = build_architecture("timm:test_efficientnet", num_classes=7)
    assert bundle.num_classes == 7 and bundle.build_kwargs == {"num_classes": 7}
    assert bundle.task == "classification"
    assert bundle.preprocessing is not None and bundle.preprocessing.input_shape == (3, 160, 160)
    assert bundle.model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    assert build_architecture("timm:test_efficientnet").num_classes == 1000


def test_the_preprocessing_is_the_pretrained_configuration() -> None:
    bundle = build_architecture("timm:test_resnet.r160_in1k")  # a tag picks a configuration, never weights
    assert bundle.preprocessing is not None and bundle.preprocessing.mean == (0.5, 0.5, 0.5)
    assert bundle.preprocessing.std == (0.5, 0.5, 0.5) and bundle.preprocessing.input_shape == (3, 160, 160)


def test_building_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a timm model's build tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    build_architecture("timm:test_resnet.r160_in1k")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE


@pytest.mark.parametrize(("spec", "expected"), [
    ("timm:mobilenetv3_small_5", "Did you mean 'mobilenetv3_small_075'?.*timm.list_models"),
    ("timm:resnet18.no_such_tag", "no pretrained tag 'no_such_tag' .*a1_in1k"),
    ("timm:", "unknown timm model ''"),
])
def test_an_unknown_name_is_one_line_saying_how_to_find_names(spec: str, expected: str) -> None:
    with pytest.raises(ModelLoadError, match=expected) as info:
        build_architecture(spec)
    assert "\n" not in str(info.value)


def test_without_timm_the_line_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError, as where it is not installed
    with pytest.raises(ModelLoadError, match=r"pip install 'edgeprune\[timm\]'"):
        build_architecture("timm:test_resnet")


def test_weights_come_from_a_timm_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = build_architecture("timm:test_resnet", num_classes=5).model.eval()
    path = tmp_path / "model.safetensors"  # the file timm's hub checkpoints ship as
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    torch.manual_seed(1)
    bundle = load_model("timm:test_resnet", path, num_classes=5)
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(bundle.model(x), source(x))


def test_library_models_are_not_factories() -> None:
    assert is_factory_spec("mypkg.nets:build")
    for spec in ("torchvision:mobilenet_v3_small", "timm:mobilenetv3_small_050", "timm:test_resnet",
                 "ultralytics:yolov8n.yaml"):
        assert not is_factory_spec(spec), spec


@pytest.mark.parametrize("spec", ["timm:test_resnet", "torchvision:squeezenet1_1"])
def test_a_received_folder_naming_a_library_model_loads_without_allow_factory(spec: str, tmp_path: Path) -> None:
    model = build_architecture(spec, num_classes=4).model.eval()
    plan = SlimPlan(spec, {"num_classes": 4}, [1, 3, 64, 64], None, [], module_shapes(model), {"importance": "test"})
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_dict()), encoding="utf-8")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = load_slim_model(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
