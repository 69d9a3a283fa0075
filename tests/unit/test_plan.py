"""edgeprune.prune.plan and surgery: slim copies, plan files, and rebuilding a slim model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from edgeprune.errors import InputError, ModelLoadError
from edgeprune.models.cifar_resnet import CifarResNet, ZeroPadShortcut
from edgeprune.prune.graph import ModelGraph
from edgeprune.prune.importance import ScoringContext, get_importance
from edgeprune.prune.plan import PLAN_FORMAT, PLAN_VERSION, SlimPlan, load_slim_model, module_shapes
from edgeprune.prune.surgery import slim_copy
from edgeprune.prune.uniform import uniform_keep

X = torch.zeros(1, 3, 32, 32)


@pytest.fixture(scope="module")
def pruned() -> tuple[nn.Module, nn.Module, dict[str, list[int]], ModelGraph]:
    torch.manual_seed(0)
    model = CifarResNet(20).eval()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    graph = ModelGraph(model, X, warn_frozen=False)
    importance = get_importance("l1")
    ctx = ScoringContext(model)
    groups = graph.prunable_groups()
    scores = {g.name: importance.score(g, ctx) for g in groups}
    keep = uniform_keep(groups, scores, 0.5, alignment=8)
    slim = slim_copy(model, X, keep)
    return model, slim, keep, graph


def write_output(out: Path, slim: nn.Module, plan: SlimPlan) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan.to_dict()), encoding="utf-8")
    save_file({k: v.detach().contiguous() for k, v in slim.state_dict().items()}, str(out / "model.safetensors"))


def make_plan(slim: nn.Module, keep: dict[str, list[int]], graph: ModelGraph) -> SlimPlan:
    groups = [
        {"name": g.name, "width_before": g.width, "width_after": len(keep[g.name]), "kept": keep[g.name]}
        for g in graph.prunable_groups()
    ]
    return SlimPlan("cifar-resnet20", {"num_classes": 10}, [1, 3, 32, 32], None, groups, module_shapes(slim),
                    {"importance": "l1", "keep_ratio": 0.5})


def test_slim_copy_leaves_the_original_whole(pruned: tuple) -> None:
    model, slim, keep, _ = pruned
    assert slim is not model
    assert model.layer1[0].conv1.out_channels == 16
    assert sum(p.numel() for p in model.parameters()) == 269_722
    assert sum(p.numel() for p in slim.parameters()) < 269_722 // 2 + 10_000
    assert not slim.training
    # alignment 8 at ratio 0.5: 16 -> 8, 32 -> 16, 64 -> 32
    assert slim.layer1[0].conv1.out_channels == 8
    assert slim.layer2[1].conv1.out_channels == 16
    assert slim.layer3[2].conv1.out_channels == 32
    assert all(len(v) in (8, 16, 32) for v in keep.values())


def test_plan_round_trip_rebuilds_identical_model(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    plan = make_plan(slim, keep, graph)
    write_output(tmp_path, slim, plan)
    rebuilt = load_slim_model(tmp_path)
    assert isinstance(rebuilt, CifarResNet)
    assert not rebuilt.training
    assert module_shapes(rebuilt) == module_shapes(slim)
    for key, value in slim.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    pads = [(s.in_channels, s.out_channels, s.pad_front) for s in rebuilt.modules() if isinstance(s, ZeroPadShortcut)]
    assert pads == [(s.in_channels, s.out_channels, s.pad_front) for s in slim.modules() if isinstance(s, ZeroPadShortcut)]
    torch.manual_seed(5)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), slim(x), atol=1e-6)


def test_module_shapes_records_widths() -> None:
    shapes = module_shapes(nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(20, 2)))
    assert shapes["0"] == {
        "type": "Conv2d",
        "attrs": {"in_channels": 3, "out_channels": 5, "groups": 1},
        "tensors": {"weight": [5, 3, 3, 3], "bias": [5]},
    }
    assert shapes["1"]["attrs"] == {"num_features": 5}
    assert shapes["1"]["tensors"]["running_var"] == [5]
    assert shapes["1"]["tensors"]["num_batches_tracked"] == []
    assert shapes["4"]["attrs"] == {"in_features": 20, "out_features": 2}
    assert "2" not in shapes and "3" not in shapes and "" not in shapes


def test_plan_dict_round_trip_and_digest(pruned: tuple) -> None:
    _, slim, keep, graph = pruned
    plan = make_plan(slim, keep, graph)
    data = plan.to_dict()
    assert data["format"] == PLAN_FORMAT and data["version"] == PLAN_VERSION
    assert data["model"] == {"spec": "cifar-resnet20", "build_kwargs": {"num_classes": 10}}
    again = SlimPlan.from_dict(json.loads(json.dumps(data)))
    assert again == plan
    assert again.digest() == plan.digest()
    assert len(plan.digest()) == 64
    changed = SlimPlan.from_dict({**data, "input_shape": [2, 3, 32, 32]})
    assert changed.digest() != plan.digest()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="something-else"),
        lambda d: d.update(version=99),
        lambda d: d.pop("groups"),
        lambda d: d.pop("modules"),
        lambda d: d.pop("input_shape"),
        lambda d: d.update(model={"build_kwargs": {}}),
        lambda d: d.update(model="cifar-resnet20"),
        lambda d: d.update(input_shape=None),
    ],
)
def test_malformed_plan_raises_input_error(pruned: tuple, mutate: Callable[[dict], None]) -> None:
    _, slim, keep, graph = pruned
    data = make_plan(slim, keep, graph).to_dict()
    mutate(data)
    with pytest.raises(InputError):
        SlimPlan.from_dict(data)


def test_load_slim_model_errors(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    with pytest.raises(InputError, match="plan.json not found"):
        load_slim_model(tmp_path)
    plan = make_plan(slim, keep, graph)
    write_output(tmp_path, slim, plan)
    (tmp_path / "plan.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        load_slim_model(tmp_path)
    data = plan.to_dict()
    data["version"] = 2
    (tmp_path / "plan.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(InputError, match="not an edgeprune plan"):
        load_slim_model(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(InputError, match="model.safetensors not found"):
        load_slim_model(tmp_path)


def test_plan_for_another_architecture(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    plan = make_plan(slim, keep, graph)
    plan.model_spec = "cifar-resnet32"  # has extra blocks the slim weights lack
    write_output(tmp_path, slim, plan)
    with pytest.raises(ModelLoadError, match="missing"):
        load_slim_model(tmp_path)
    plan.model_spec = "demo"  # modules of the plan do not exist
    write_output(tmp_path, slim, plan)
    with pytest.raises(InputError, match="plan does not match the architecture"):
        load_slim_model(tmp_path)


def test_weights_that_do_not_fit_the_plan(pruned: tuple, tmp_path: Path) -> None:
    model, slim, keep, graph = pruned
    plan = make_plan(slim, keep, graph)
    write_output(tmp_path, model, plan)  # full-width weights with a slim plan
    with pytest.raises(ModelLoadError, match="has shape"):
        load_slim_model(tmp_path)


def test_plan_json_that_is_not_an_object(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    write_output(tmp_path, slim, make_plan(slim, keep, graph))
    (tmp_path / "plan.json").write_text("[]", encoding="utf-8")
    with pytest.raises(InputError):
        load_slim_model(tmp_path)


def test_plan_module_entry_missing_keys(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    plan = make_plan(slim, keep, graph)
    plan.shapes = {**plan.shapes, "conv1": {"attrs": {}}}
    write_output(tmp_path, slim, plan)
    with pytest.raises(InputError):
        load_slim_model(tmp_path)


def test_corrupt_slim_weights(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    write_output(tmp_path, slim, make_plan(slim, keep, graph))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError):
        load_slim_model(tmp_path)


def _first_group_and_module(data: dict) -> tuple[dict, dict]:
    module = next(m for m in data["modules"].values() if m["tensors"].get("weight"))
    return data["groups"][0], module


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda d: d.update(input_shape=[1, 3, -32, 32]), "input_shape[2]", "got -32"),
        (lambda d: d.update(input_shape=[1, 3, "32", 32]), "input_shape[2]", "got '32'"),
        (lambda d: d.update(input_shape=[1, True, 32, 32]), "input_shape[1]", "got True"),
        (lambda d: d.update(groups={}), "groups", "expected a list"),
        (lambda d: d["groups"][0].update(kept=[10**6] + d["groups"][0]["kept"][1:]), "groups[0].kept[0]",
         "channel index in [0,"),
        (lambda d: d["groups"][0].update(kept=[-1] + d["groups"][0]["kept"][1:]), "groups[0].kept[0]", "got -1"),
        (lambda d: d["groups"][0].update(kept=d["groups"][0]["kept"][:1] * 2 + d["groups"][0]["kept"][2:]),
         "groups[0].kept[1]", "kept twice"),
        (lambda d: d["groups"][0].update(kept=d["groups"][0]["kept"][1:]), "groups[0].kept", "indices for width_after"),
        (lambda d: d["groups"][0].update(width_after=0), "groups[0].width_after", "positive integer"),
        (lambda d: d["groups"][0].update(name=3), "groups[0].name", "non-empty string"),
        (lambda d: _first_group_and_module(d)[1]["tensors"].update(weight=[16, -3, 3, 3]), ".tensors.weight[1]",
         "got -3"),
        (lambda d: _first_group_and_module(d)[1]["tensors"].update(weight=[2**20, 2**20, 3, 3]), ".tensors.weight",
         "elements"),
        (lambda d: _first_group_and_module(d)[1].update(attrs={"out_channels": "16"}), ".attrs.out_channels",
         "got '16'"),
        (lambda d: d.update(removed_blocks="layer1.0"), "removed_blocks", "expected a list"),
    ],
)
def test_plan_fields_are_validated_on_read(pruned: tuple, mutate: Callable[[dict], None], field: str,
                                           problem: str) -> None:
    """Issue 36: a plan of the wrong shape is one line naming the file and the field, never an internal error."""
    _, slim, keep, graph = pruned
    data = make_plan(slim, keep, graph).to_dict()
    mutate(data)
    with pytest.raises(InputError) as error:
        SlimPlan.from_dict(data, "out/plan.json")
    message = str(error.value)
    assert message.startswith("out/plan.json: invalid plan field '") and "\n" not in message
    assert field in message and problem in message, message


def test_negative_dimension_in_plan_json_is_refused_by_load_slim_model(pruned: tuple, tmp_path: Path) -> None:
    _, slim, keep, graph = pruned
    plan = make_plan(slim, keep, graph)
    write_output(tmp_path, slim, plan)
    data = json.loads((tmp_path / "plan.json").read_text())
    _first_group_and_module(data)[1]["tensors"]["weight"][0] = -8
    (tmp_path / "plan.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"plan\.json: invalid plan field 'modules\..*\.tensors\.weight\[0\]'"):
        load_slim_model(tmp_path)
