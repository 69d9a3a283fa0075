"""edgeprune.train.detector_loop and default_detector: YOLOv8n trained with Ultralytics' loss in a plain loop,
the shapes detector cached with its dataset, nothing written outside edgeprune's cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics", reason="ultralytics (the [yolo] extra) is not installed")
pytest.importorskip("faster_coco_eval", reason="faster-coco-eval (the detection metric) is not installed")

import torch  # noqa: E402

from edgeprune.data.detection import load_detection_dataset  # noqa: E402
from edgeprune.data.shapes_detection import ShapesSpec  # noqa: E402
from edgeprune.tasks.detection_predict import predict_detections  # noqa: E402
from edgeprune.train import default_detector  # noqa: E402
from edgeprune.train.detector_loop import DetectorTrainSpec, _augment, train_detector  # noqa: E402

TINY_SHAPES = ShapesSpec(size_px=64, train_images=16, val_images=8, min_side_px=12, max_side_px=28, seed=1)
TINY_TRAIN = DetectorTrainSpec(epochs=1, batch_size=8, lr=0.002, seed=0)


@pytest.fixture()
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPRUNE_CACHE_DIR", str(cache))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cache


def test_augmentation_moves_boxes_with_pixels() -> None:
    images = np.zeros((1, 32, 32, 3), np.uint8)
    images[0, 4:10, 20:30] = 255  # an object at x 20..30, y 4..10
    boxes = [np.array([[20, 4, 30, 10]], np.float32)]
    spec = DetectorTrainSpec(epochs=1)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        out, out_boxes = _augment(images, boxes, rng, spec)
        x1, y1, x2, y2 = out_boxes[0][0].astype(int)
        assert out[0, y1:y2, x1:x2].min() == 255 and out[0].sum() == images[0].sum()
        seen.add((x1, y1))
    assert len(seen) == 8, "all eight flips and transposes occur"
    assert boxes[0].tolist() == [[20, 4, 30, 10]], "the dataset's boxes are not modified"


def test_loss_falls_and_weights_load_into_a_plain_model(tmp_cache: Path) -> None:
    """From scratch the loss first rises (the assigner finds matches once boxes take shape), then falls."""
    root = default_detector.shapes_dataset_dir(TINY_SHAPES)
    train = load_detection_dataset(root, (64, 64), split="train").subset(np.arange(8))
    spec = DetectorTrainSpec(epochs=12, batch_size=8, lr=0.004, flips=False, channel_shuffle=False, seed=0)
    torch.manual_seed(0)
    model = default_detector.build_shapes_detector()
    losses = train_detector(model, train, spec)
    assert len(losses) == 12 and losses[-1] < 0.7 * max(losses)
    torch.manual_seed(0)
    again = train_detector(default_detector.build_shapes_detector(), train, spec)
    assert again == losses, "seeded: the same run gives the same losses"
    assert not model.training
    fresh = default_detector.build_shapes_detector()
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.eval()
    fresh.model[-1].export = True
    with torch.no_grad():
        out = fresh(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 4 + 4, 8 * 8 + 4 * 4 + 2 * 2)  # strides 8, 16, 32 at 64 px
    assert len(predict_detections(fresh, train.images[:3])) == 3


def test_trained_detector_is_cached_with_its_dataset(tmp_cache: Path) -> None:
    path = default_detector.trained_shapes_detector(TINY_SHAPES, TINY_TRAIN)
    assert path.is_file() and path.parent == tmp_cache and path.suffix == ".safetensors"
    assert default_detector.DETECTOR_RECIPE in path.name
    roots = [p for p in tmp_cache.iterdir() if p.name.startswith("detection-shapes-")]
    assert len(roots) == 1 and (roots[0] / "data.yaml").is_file()
    assert sorted(p.name for p in (roots[0] / "val" / "images").iterdir())[:2] == ["00000.png", "00001.png"]
    meta = default_detector.detector_metadata(path)
    assert meta["recipe"] == default_detector.DETECTOR_RECIPE and meta["input_hw"] == "64,64"
    assert 0.0 <= float(meta["val_map50_95"]) <= float(meta["val_map50"]) <= 1.0
    assert list(Path.cwd().iterdir()) == [], "nothing is written to the working folder"
    assert os.environ["YOLO_OFFLINE"] == "1"
    stamp = path.stat().st_mtime_ns
    assert default_detector.trained_shapes_detector(TINY_SHAPES, TINY_TRAIN) == path
    assert path.stat().st_mtime_ns == stamp, "the second call reuses the cache"
    path.write_bytes(b"corrupt")
    assert default_detector.trained_shapes_detector(TINY_SHAPES, TINY_TRAIN) == path
    assert default_detector.detector_metadata(path)["recipe"] == default_detector.DETECTOR_RECIPE


def test_other_recipes_get_their_own_cache_entries(tmp_cache: Path) -> None:
    default = default_detector.shapes_detector_path()
    other = default_detector.shapes_detector_path(TINY_SHAPES, TINY_TRAIN)
    assert default.name == f"yolov8n-shapes-{default_detector.DETECTOR_RECIPE}-seed0.safetensors"
    assert other != default and other.name.startswith(default.stem)


# The full recipe (about 6 minutes on one core) is not in the suite: tools/make_shapes_detector.py trains and scores
# it, and the detection benchmark (tools/bench/detection.py) records its mAP in docs/benchmarks.md.


def test_an_interrupted_detector_fine_tune_resumes_to_the_same_weights(tmp_cache: Path) -> None:
    root = default_detector.shapes_dataset_dir(TINY_SHAPES)
    train = load_detection_dataset(root, (64, 64), split="train")
    spec = DetectorTrainSpec(epochs=3, batch_size=8, lr=0.004, seed=0)
    torch.manual_seed(0)
    start = default_detector.build_shapes_detector().state_dict()

    def fresh() -> torch.nn.Module:
        model = default_detector.build_shapes_detector()
        model.load_state_dict(start)
        return model

    reference = fresh()
    expected = train_detector(reference, train, spec)

    class Interrupted(Exception):
        pass

    def stop_after_two(epoch: int, loss: float, model: torch.nn.Module) -> None:
        if epoch == 1:
            raise Interrupted

    checkpoint = tmp_cache / "finetune.pt"
    with pytest.raises(Interrupted):
        train_detector(fresh(), train, spec, on_epoch=stop_after_two, checkpoint=checkpoint)
    assert checkpoint.is_file()
    resumed = default_detector.build_shapes_detector()  # other weights: the checkpoint must win
    losses = train_detector(resumed, train, spec, checkpoint=checkpoint)
    assert losses == pytest.approx(expected, rel=1e-5)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # other settings: the checkpoint is ignored with a warning, and training starts over
    other = train_detector(fresh(), train, DetectorTrainSpec(epochs=1, batch_size=8, lr=0.004, seed=0),
                           checkpoint=checkpoint)
    assert len(other) == 1


def test_gradual_weight_pruning_during_a_detector_fine_tune_keeps_exact_masks_through_the_moving_average(
        tmp_cache: Path) -> None:
    """--sparsity on a detector: the polynomial schedule prunes during the fine-tune (not one shot), and the
    returned model, which holds the moving average (EMA) of the weights, carries the masks as last set: 0 or 1,
    never averaged (an averaged mask would leave most pruned weights non-zero)."""
    from edgeprune.prune.sparsity import WeightMasks, layer_sparsity, total_sparsity
    from edgeprune.train.sparsity_schedule import GradualPruning, PolynomialDecay

    root = default_detector.shapes_dataset_dir(TINY_SHAPES)
    train = load_detection_dataset(root, (64, 64), split="train")
    spec = DetectorTrainSpec(epochs=2, batch_size=8, lr=0.004, seed=0)  # 2 steps an epoch, EMA on
    torch.manual_seed(0)
    model = default_detector.build_shapes_detector()
    masks = WeightMasks(model, "global")
    gradual = GradualPruning(masks, PolynomialDecay(0.2, 0.6, begin_step=0, end_step=4, frequency=1))
    gradual.start()
    train_detector(model, train, spec, on_step=gradual)
    assert [step for step, _ in gradual.history] == [0, 1, 2, 3, 4]
    assert gradual.history[-1][1] == pytest.approx(0.6)
    values = torch.cat([b.flatten() for n, b in model.named_buffers() if n.endswith("weight_mask")])
    assert set(values.unique().tolist()) == {0.0, 1.0}, "the moving average averaged the masks"
    masks.make_permanent()
    assert total_sparsity(layer_sparsity(model)) == pytest.approx(0.6, abs=0.01)
