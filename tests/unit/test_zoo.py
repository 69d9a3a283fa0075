"""edgeprune.models.zoo: building models from specifications."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeprune.errors import InputError, ModelLoadError, UnknownNameError
from edgeprune.models.cifar_resnet import CifarResNet, ZeroPadShortcut, parse_cifar_resnet_depth
from edgeprune.models.preprocessing import Preprocessing
from edgeprune.models.zoo import CIFAR_PREPROCESSING, build_architecture, builtin_model_names
from edgeprune.train.default_weights import load_model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("spec", "params"),
    [("cifar-resnet20", 269_722), ("cifar-resnet32", 464_154), ("cifar-resnet56", 853_018), ("cifar-resnet110", 1_727_962)],
)
def test_cifar_resnets_have_paper_parameter_counts(spec: str, params: int) -> None:
    torch.manual_seed(0)
    bundle = build_architecture(spec)
    assert isinstance(bundle.model, CifarResNet)
    assert n_params(bundle.model) == params
    assert bundle.spec == spec
    assert bundle.num_classes == 10
    assert bundle.build_kwargs == {"num_classes": 10}
    assert bundle.preprocessing == CIFAR_PREPROCESSING
    assert bundle.preprocessing.input_shape == (3, 32, 32)


def test_cifar_resnet20_forward_and_num_classes() -> None:
    torch.manual_seed(0)
    bundle = build_architecture("cifar-resnet20", num_classes=100)
    assert bundle.num_classes == 100
    assert bundle.build_kwargs == {"num_classes": 100}
    out = bundle.model.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100)
    # option-A shortcuts at the two stage transitions
    shortcuts = [m for m in bundle.model.modules() if isinstance(m, ZeroPadShortcut)]
    assert [(s.in_channels, s.out_channels, s.stride, s.pad_front) for s in shortcuts] == [(16, 32, 2, 8), (32, 64, 2, 16)]


@pytest.mark.parametrize("spec", ["cifar-resnet21", "cifar-resnet2", "cifar-resnet0"])
def test_cifar_resnet_bad_depth_is_model_load_error(spec: str) -> None:
    with pytest.raises(ModelLoadError, match="6n\\+2"):
        build_architecture(spec)


def test_parse_cifar_resnet_depth() -> None:
    assert parse_cifar_resnet_depth("cifar-resnet56") == 56
    assert parse_cifar_resnet_depth("cifar-resnet") is None
    assert parse_cifar_resnet_depth("resnet56") is None


def test_unknown_model_name() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_architecture("cifar_resnet20")
    assert "Did you mean 'cifar-resnet20'?" in str(info.value)
    for name in builtin_model_names():
        assert name in info.value.known


def test_demo_architecture_builds_without_training() -> None:
    bundle = build_architecture("demo")
    assert bundle.num_classes == 10
    assert bundle.preprocessing is not None and bundle.preprocessing.input_shape == (1, 32, 32)
    assert bundle.model.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_torchvision_resnet18_builds() -> None:
    torch.manual_seed(0)
    bundle = build_architecture("torchvision:resnet18")
    assert n_params(bundle.model) == 11_689_512
    assert bundle.num_classes == 1000
    assert bundle.preprocessing is not None and bundle.preprocessing.input_shape == (3, 224, 224)


def test_torchvision_num_classes_is_passed() -> None:
    bundle = build_architecture("torchvision:resnet18", num_classes=7)
    assert bundle.model.fc.out_features == 7
    assert bundle.build_kwargs == {"num_classes": 7}


def test_torchvision_unknown_name() -> None:
    with pytest.raises(UnknownNameError, match="torchvision model 'nonexistent'") as info:
        build_architecture("torchvision:nonexistent")
    assert "resnet18" in info.value.known
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet18'"):
        build_architecture("torchvision:resnet81")


FACTORY_SOURCE = """
import torch
from torch import nn
from edgeprune.models.preprocessing import Preprocessing

def build(num_classes=3):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))
    return model

def build_with_prep(num_classes=3):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, num_classes))
    model.edgeprune_preprocessing = Preprocessing(4, 4, 1, (0.5,), (0.5,))
    return model

def not_a_model(num_classes=3):
    return {"weights": 1}

def broken(num_classes=3):
    raise RuntimeError("factory exploded")

VALUE = 3
"""


def test_user_factory_builds(make_module: Callable[[str, str], str]) -> None:
    mod = make_module("ep_unit_factory_a", FACTORY_SOURCE)
    bundle = build_architecture(f"{mod}:build")
    assert isinstance(bundle.model, nn.Sequential)
    assert bundle.spec == f"{mod}:build"
    assert bundle.preprocessing is None
    assert bundle.num_classes is None
    assert bundle.build_kwargs == {}
    bundle = build_architecture(f"{mod}:build", num_classes=5)
    assert bundle.model[2].out_features == 5
    assert bundle.num_classes == 5
    assert bundle.build_kwargs == {"num_classes": 5}


def test_user_factory_preprocessing_attribute(make_module: Callable[[str, str], str]) -> None:
    mod = make_module("ep_unit_factory_b", FACTORY_SOURCE)
    bundle = build_architecture(f"{mod}:build_with_prep")
    assert bundle.preprocessing == Preprocessing(4, 4, 1, (0.5,), (0.5,))


def test_user_factory_returning_non_module(make_module: Callable[[str, str], str]) -> None:
    mod = make_module("ep_unit_factory_c", FACTORY_SOURCE)
    with pytest.raises(ModelLoadError, match="returned dict, not a torch.nn.Module"):
        build_architecture(f"{mod}:not_a_model")


def test_user_factory_that_raises(make_module: Callable[[str, str], str]) -> None:
    mod = make_module("ep_unit_factory_d", FACTORY_SOURCE)
    with pytest.raises(ModelLoadError, match="RuntimeError: factory exploded"):
        build_architecture(f"{mod}:broken")


def test_user_factory_missing_or_not_callable(make_module: Callable[[str, str], str]) -> None:
    mod = make_module("ep_unit_factory_e", FACTORY_SOURCE)
    with pytest.raises(ModelLoadError, match="'missing' is not a callable"):
        build_architecture(f"{mod}:missing")
    with pytest.raises(ModelLoadError, match="'VALUE' is not a callable"):
        build_architecture(f"{mod}:VALUE")


def test_user_factory_module_not_found() -> None:
    with pytest.raises(ModelLoadError, match="cannot import module 'ep_unit_no_such_module'"):
        build_architecture("ep_unit_no_such_module:build")


@pytest.mark.parametrize("source", ["raise RuntimeError('import-time failure')\n", "def build(:\n"])
def test_user_module_failing_at_import_is_model_load_error(
    make_module: Callable[[str, str], str], source: str, request: pytest.FixtureRequest
) -> None:
    mod = make_module(f"ep_unit_factory_bad_{abs(hash(request.node.name)) % 10_000}", source)
    with pytest.raises(ModelLoadError):
        build_architecture(f"{mod}:build")


def test_load_model_with_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = CifarResNet(20)
    path = tmp_path / "w.pt"
    torch.save(source.state_dict(), path)
    bundle = load_model("cifar-resnet20", path)
    assert not bundle.model.training
    for key, value in source.state_dict().items():
        assert torch.equal(bundle.model.state_dict()[key], value), key


def test_load_model_without_weights_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        bundle = load_model("cifar-resnet20")
    assert not bundle.model.training
    assert "random weights" in caplog.text


def test_load_model_wrong_weights_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(CifarResNet(32).state_dict(), path)
    with pytest.raises(InputError, match="unexpected tensor 'layer1.3"):
        load_model("cifar-resnet20", path)
