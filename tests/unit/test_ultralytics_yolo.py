"""``ultralytics:YAML`` models: the split-stem rewrite is exact, Ultralytics' weights load into it, and the channel
graph prunes the stems and SPPF while keeping the Detect outputs whole, with reasons that name them."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ultralytics", reason="the [yolo] extra (ultralytics) is not installed")

from edgeprune.errors import ModelLoadError  # noqa: E402
from edgeprune.models.ultralytics_env import configure_ultralytics_offline  # noqa: E402
from edgeprune.models.weights import apply_state_dict  # noqa: E402
from edgeprune.models.zoo import build_architecture  # noqa: E402
from edgeprune.prune.graph import ModelGraph  # noqa: E402

SIZE = 128


def _ultralytics_model(config: str, classes: int) -> torch.nn.Module:
    """Ultralytics' own model, unmodified, with batch-norm statistics that are not the identity."""
    configure_ultralytics_offline()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(config, nc=classes, verbose=False).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    model.model[-1].export = True
    return model


@pytest.mark.parametrize("config", ["yolov8n.yaml", "yolo11n.yaml"])
def test_the_rewritten_model_computes_what_ultralytics_computes_with_its_weights(config: str) -> None:
    original = _ultralytics_model(config, 3)
    bundle = build_architecture(f"ultralytics:{config}", 3)
    assert bundle.task == "detection" and bundle.num_classes == 3
    assert not any(type(m).__name__ in ("C2f", "C3k2", "C2PSA") for m in bundle.model.modules())
    apply_state_dict(bundle.model, original.state_dict(), "ultralytics state dict")
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected, produced = original(x), bundle.model(x)
    assert produced.shape == (2, 4 + 3, (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2)
    torch.testing.assert_close(produced, expected, rtol=0, atol=1e-4)


def test_the_graph_prunes_split_stems_and_names_what_it_keeps_whole() -> None:
    bundle = build_architecture("ultralytics:yolov8n.yaml", 3)
    graph = ModelGraph(bundle.model, torch.rand(1, 3, SIZE, SIZE), warn_frozen=False)
    by_name = {g.name: g for g in graph.groups}
    # each half of a C2f stem is a group of its own, and prunable (model.12: a neck C2f, no residual)
    assert by_name["model.12.cv1a.conv"].prunable and by_name["model.12.cv1b.conv"].prunable
    # a backbone C2f's second half is a residual stream concatenated before and after its bottleneck: its cv2 reads
    # each channel twice, and both copies go together
    stream = by_name["model.2.m.0.cv2.conv"]
    assert stream.prunable, stream.frozen_reason
    assert len([m for m in stream.members if m.module == "model.2.cv2.conv" and m.dim == "in"]) == 2
    frozen = {g.name: g.frozen_reason for g in graph.groups if not g.prunable}
    assert any("class scores output of the Detect head" in r for r in frozen.values()), frozen
    assert any("box distribution output of the Detect head" in r for r in frozen.values()), frozen
    # SPPF's pooled copies of a channel go with it: its cv2 reads each of cv1's channels four times
    sppf = by_name["model.9.cv1.conv"]
    assert sppf.prunable and len([m for m in sppf.members if m.module == "model.9.cv2.conv"]) == 4
    assert graph.classifier is None  # a detector has no classifier to guess from its output width
    prunable = sum(g.width for g in graph.prunable_groups())
    assert prunable > 0.8 * sum(g.width for g in graph.groups)


def test_removing_channels_keeps_the_output_shape() -> None:
    bundle = build_architecture("ultralytics:yolov8n.yaml", 3)
    x = torch.rand(1, 3, SIZE, SIZE)
    graph = ModelGraph(bundle.model, x, warn_frozen=False)
    keep = {g.name: list(range(0, g.width, 2)) for g in graph.prunable_groups()}
    graph.remove_channels(keep)
    with torch.no_grad():
        out = bundle.model(x)
    assert out.shape == (1, 7, (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2)
    assert torch.isfinite(out).all()


def test_the_backbones_residual_bottlenecks_are_removable_blocks_ordered_by_the_detection_distortion() -> None:
    from edgeprune.prune.blocks import find_removable_blocks, greedy_removal_order, remove_blocks
    from edgeprune.tasks.detection import DetectionTask

    bundle = build_architecture("ultralytics:yolov8n.yaml", 3)
    x = torch.rand(4, 3, SIZE, SIZE)
    blocks = find_removable_blocks(bundle.model, x[:1])
    # the backbone's C2f bottlenecks add their input; the neck's (model.12 onwards) have no shortcut
    assert blocks == ["model.2.m.0", "model.4.m.0", "model.4.m.1", "model.6.m.0", "model.6.m.1", "model.8.m.0"]
    order, distortion = greedy_removal_order(bundle.model, blocks, x, 2,
                                             distortion_of=DetectionTask().output_distortion)
    assert len(order) == 2 and set(order) <= set(blocks) and all(d >= 0 for d in distortion.values())
    slim = remove_blocks(bundle.model, order)
    graph = ModelGraph(slim, x[:1], warn_frozen=False)  # the channel graph of what is left still builds
    assert graph.prunable_groups()
    with torch.no_grad():
        assert slim(x).shape == bundle.model(x).shape


@pytest.mark.parametrize("spec, message", [
    ("ultralytics:nosuchmodel.yaml", "has no model YAML 'nosuchmodel.yaml'"),
    ("ultralytics:best.pt", "is a checkpoint, not a model YAML"),
    ("ultralytics:yolov8n", "expected a model YAML"),
    ("ultralytics:/no/such/dir/my.yaml", "model YAML /no/such/dir/my.yaml not found"),
    ("ultralytics:yolov8n-cls.yaml", "ends in Classify"),
])
def test_bad_specs_are_one_line_model_errors(spec: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build_architecture(spec)


def test_an_ultralytics_checkpoint_is_refused_with_the_conversion_that_makes_it_loadable(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeprune.models.weights import load_weights, read_state_dict

    checkpoint = tmp_path / "best.pt"
    torch.save({"model": None, "ema": _ultralytics_model("yolov8n.yaml", 3).half(), "epoch": 3}, checkpoint)
    with pytest.raises(ModelLoadError, match="is an Ultralytics checkpoint") as refused:
        read_state_dict(checkpoint)
    # the conversion the message gives, run as the user would (on a file they trust), then loaded by edgeprune
    command = str(refused.value).split('python -c "', 1)[1].split('"', 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(command, {})  # the documented one-liner, on a file this test wrote
    bundle = build_architecture("ultralytics:yolov8n.yaml", 3)
    load_weights(bundle.model, tmp_path / "best.safetensors")


def test_the_model_can_be_copied_after_an_onnx_export(tmp_path) -> None:
    """The Detect head caches its anchors; an export (traced with fake tensors) must not leave fake ones behind,
    or every later pruned copy of the model fails (Torch-Pruning's recipe in the benchmark did)."""
    import copy

    from edgeprune.runtimes.onnx_export import export_onnx

    model = build_architecture("ultralytics:yolov8n.yaml", 3).model
    x = torch.rand(1, 3, SIZE, SIZE)
    export_onnx(model, x, tmp_path / "m.onnx")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))


def test_int8_keeps_the_box_decoding_in_float(tmp_path) -> None:
    """Boxes (pixels) and class probabilities (0..1) leave in one tensor: quantized with one scale, every
    probability rounds to 0 (the trained shapes detector measured 0% agreement so). The decoding stays float."""
    import numpy as np
    import onnx

    from edgeprune.quantize.backend import Int8Backend
    from edgeprune.runtimes import get_backend
    from edgeprune.target import load_target

    model = build_architecture("ultralytics:yolov8n.yaml", 3).model
    x = torch.rand(4, 3, SIZE, SIZE)
    target = load_target("cpu").with_precision("int8")
    artifact = Int8Backend(get_backend(target), x.numpy()).export(model, x[:1], tmp_path / "int8", target)
    graph = onnx.load(str(artifact.path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    last = producer[graph.output[0].name]
    assert last.op_type == "Concat"
    assert all(producer[i].op_type not in ("DequantizeLinear", "QuantizeLinear") for i in last.input)
    assert any(n.op_type == "QLinearConv" or n.op_type == "DequantizeLinear" for n in graph.node)  # still INT8
    assert np.isfinite(get_backend(target).load(artifact, target).run({artifact.input_name: x[:1].numpy()})[0]).all()


def test_distillation_leaves_the_original_prunable() -> None:
    """The distillation losses run the teacher under no_grad and leave its parameters as they are: the teacher is
    the run's original, which later candidates are cut from, and Torch-Pruning traces through gradients (with its
    parameters frozen the graph had one group, and the next candidate failed: "group ... is unknown or frozen")."""
    from edgeprune.train.detector_distill import YoloDistillationLoss
    from edgeprune.train.distill import DistillationLoss
    from edgeprune.train.segmentation_loss import SegmentationLoss

    model = build_architecture("ultralytics:yolov8n.yaml", 3).model
    before = [p.requires_grad for p in model.parameters()]
    for loss in (YoloDistillationLoss, DistillationLoss, SegmentationLoss):
        loss(model)
    assert [p.requires_grad for p in model.parameters()] == before
    graph = ModelGraph(model, torch.rand(1, 3, SIZE, SIZE), warn_frozen=False)
    assert len(graph.prunable_groups()) > 50
