"""``torchvision:<segmentation model>``: torchvision's own model returning its ``out`` logits (the same numbers,
the same state-dict keys), and a channel graph that prunes it while keeping the class logits whole, by name."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torchvision

from edgeprune.errors import ModelLoadError, UnknownNameError
from edgeprune.models.weights import apply_state_dict
from edgeprune.models.zoo import build_architecture
from edgeprune.prune.graph import ModelGraph

SIZE = 64
NAMES = ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"]
CLASS_LAYERS = {"lraspp_mobilenet_v3_large": {"classifier.low_classifier", "classifier.high_classifier"},
                "deeplabv3_mobilenet_v3_large": {"classifier.4"}}


def _torchvision_model(name: str, classes: int) -> torch.nn.Module:
    """torchvision's own model, unmodified, with batch-norm statistics that are not the identity."""
    torch.manual_seed(0)
    extra = {} if name.startswith("lraspp") else {"aux_loss": False}
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=classes, **extra)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", NAMES)
def test_the_model_returns_torchvisions_out_logits_with_its_weights(name: str) -> None:
    original = _torchvision_model(name, 5)
    bundle = build_architecture(f"torchvision:{name}", 5)
    assert bundle.task == "segmentation" and bundle.num_classes == 5 and bundle.build_kwargs == {"num_classes": 5}
    assert bundle.preprocessing is not None and bundle.preprocessing.input_shape == (3, 224, 224)
    assert list(bundle.model.state_dict()) == list(original.state_dict())  # torchvision's own keys
    apply_state_dict(bundle.model, original.state_dict(), "torchvision state dict")
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected, produced = original(x)["out"], bundle.model(x)
    assert isinstance(produced, torch.Tensor) and produced.shape == (2, 5, SIZE, SIZE)
    torch.testing.assert_close(produced, expected, rtol=0, atol=0)


def test_the_defaults_are_21_classes_and_no_auxiliary_head() -> None:
    bundle = build_architecture("torchvision:deeplabv3_mobilenet_v3_large")
    assert bundle.num_classes == 21 and bundle.model.aux_classifier is None
    assert bundle.model(torch.rand(1, 3, SIZE, SIZE)).shape == (1, 21, SIZE, SIZE)


def test_the_model_copies_and_pickles_as_its_own_class() -> None:
    model = build_architecture("torchvision:lraspp_mobilenet_v3_large", 3).model
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert type(clone) is type(model) and isinstance(clone, torchvision.models.segmentation.LRASPP)
        assert clone(torch.rand(1, 3, SIZE, SIZE)).shape == (1, 3, SIZE, SIZE)


@pytest.mark.parametrize("name", NAMES)
def test_the_graph_prunes_the_model_and_keeps_the_class_logits_whole(name: str) -> None:
    model = build_architecture(f"torchvision:{name}", 4).model
    graph = ModelGraph(model, torch.rand(1, 3, SIZE, SIZE), warn_frozen=False)
    frozen = {g.name: g.frozen_reason for g in graph.groups if not g.prunable}
    assert len(frozen) == 1, frozen  # the class logits, and nothing else
    (group, reason), = frozen.items()
    assert group in CLASS_LAYERS[name] and "class logits" in reason and "one channel per class" in reason
    assert any(layer in reason for layer in CLASS_LAYERS[name])
    assert graph.classifier is None  # named by the model, not guessed from the output width
    prunable = sum(g.width for g in graph.prunable_groups())
    assert prunable > 0.99 * sum(g.width for g in graph.groups)
    keep = {g.name: list(range(0, g.width, 2)) for g in graph.prunable_groups()}
    graph.remove_channels(keep)
    with torch.no_grad():
        out = model(torch.rand(1, 3, SIZE, SIZE))
    assert out.shape == (1, 4, SIZE, SIZE) and torch.isfinite(out).all()


def test_unknown_names_list_the_segmentation_models() -> None:
    with pytest.raises(UnknownNameError, match="lraspp_mobilenet_v3_large"):
        build_architecture("torchvision:lraspp_mobilenet_v3_small")


def test_weights_of_another_class_count_are_refused_in_one_line() -> None:
    model = build_architecture("torchvision:lraspp_mobilenet_v3_large", 4).model
    other = _torchvision_model("lraspp_mobilenet_v3_large", 21)
    with pytest.raises(ModelLoadError, match="classifier.low_classifier.weight' has shape"):
        apply_state_dict(model, other.state_dict(), "voc.pth")
