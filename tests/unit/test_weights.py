"""edgeprune.models.weights: safe state-dict loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from edgeprune.errors import ModelLoadError
from edgeprune.models.cifar_resnet import CifarResNet
from edgeprune.models.weights import apply_state_dict, load_weights, read_state_dict


@pytest.fixture(scope="module")
def source() -> CifarResNet:
    torch.manual_seed(0)
    model = CifarResNet(20)
    with torch.no_grad():  # non-default BN buffers, so that a silent skip would show
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("num_batches_tracked"):
                buf.fill_(7)
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def fresh() -> CifarResNet:
    torch.manual_seed(123)
    return CifarResNet(20)


def test_round_trip_torch_save(source: CifarResNet, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    model = fresh()
    load_weights(model, path)
    assert_same_weights(model, source)


def test_round_trip_safetensors(source: CifarResNet, tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = fresh()
    load_weights(model, path)
    assert_same_weights(model, source)


def test_module_prefix_is_stripped(source: CifarResNet, tmp_path: Path) -> None:
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    state = read_state_dict(path)
    assert set(state) == set(source.state_dict())
    model = fresh()
    load_weights(model, path)
    assert_same_weights(model, source)


@pytest.mark.parametrize("container", ["state_dict", "model_state_dict", "model", "net", "weights"])
def test_nested_state_dict_is_accepted(source: CifarResNet, tmp_path: Path, container: str) -> None:
    path = tmp_path / "ckpt.th"
    torch.save({container: source.state_dict(), "epoch": 182, "best_prec1": 91.7}, path)
    model = fresh()
    load_weights(model, path)
    assert_same_weights(model, source)


def test_nested_and_prefixed_checkpoint(source: CifarResNet, tmp_path: Path) -> None:
    # the layout of the widely used CIFAR ResNet checkpoints: {'state_dict': {'module.conv1.weight': ...}, ...}
    path = tmp_path / "resnet20.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "best_prec1": 91.7}, path)
    model = fresh()
    load_weights(model, path)
    assert_same_weights(model, source)


def test_missing_num_batches_tracked_is_tolerated(source: CifarResNet, tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(state) < len(source.state_dict())
    torch.save(state, path)
    model = fresh()
    load_weights(model, path)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert int(model.bn1.num_batches_tracked) == 0  # the model's own counter is kept


def test_wrong_architecture_missing_tensor_is_named(source: CifarResNet, tmp_path: Path) -> None:
    path = tmp_path / "r20.pt"
    torch.save(source.state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"tensor 'layer1\.3\.conv1\.weight' and \d+ more missing"):
        load_weights(CifarResNet(32), path)


def test_wrong_architecture_unexpected_tensor_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r32.pt"
    torch.save(CifarResNet(32).state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"unexpected tensor 'layer1\.3\.conv1\.weight' and \d+ more"):
        load_weights(fresh(), path)


def test_wrong_shape_tensor_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c100.pt"
    torch.save(CifarResNet(20, num_classes=100).state_dict(), path)
    with pytest.raises(ModelLoadError) as info:
        load_weights(fresh(), path)
    assert "tensor 'linear.weight' has shape (100, 64), the model expects (10, 64)" in str(info.value)


def test_whole_pickled_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(ModelLoadError, match="state_dict") as info:
        read_state_dict(path)
    assert "pickled" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        read_state_dict(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        read_state_dict(tmp_path / "nope.pt")


@pytest.mark.parametrize("name", ["garbage.pt", "garbage.safetensors", "garbage.pth"])
@pytest.mark.parametrize("data", [b"garbage bytes here", b"PK\x03\x04broken zip", b"\x00" * 64])
def test_garbage_bytes_are_model_load_error(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match="garbage"):
        read_state_dict(path)


def test_garbage_bytes_are_not_reported_as_a_pickled_model(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"garbage bytes here")  # torch raises UnpicklingError("Weights only load failed ...")
    with pytest.raises(ModelLoadError) as info:
        read_state_dict(path)
    assert "probably a whole model" not in str(info.value)


def test_garbage_that_breaks_the_unpickler_is_model_load_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(ModelLoadError):
        read_state_dict(path)


@pytest.mark.parametrize("obj", [[1, 2, 3], {}, {"epoch": 3}, torch.zeros(3)])
def test_objects_that_are_not_state_dicts(tmp_path: Path, obj: object) -> None:
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    with pytest.raises(ModelLoadError, match="no state dict|no tensors"):
        read_state_dict(path)


def test_apply_state_dict_names_origin() -> None:
    model = fresh()
    state = dict(model.state_dict())
    del state["linear.bias"]
    with pytest.raises(ModelLoadError, match="weights my-origin do not fit the model: tensor 'linear.bias' missing"):
        apply_state_dict(model, state, "my-origin")
