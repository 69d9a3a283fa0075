"""Fine-tuning augmentation: parsing ``--augment``, and what ``crop`` and ``flip`` do to a batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgeprune.errors import UnknownNameError
from edgeprune.train.augment import Augmentation, augment_batch, parse_augmentation, shift_padding_px
from edgeprune.train.loop import TrainSpec, train_classifier


def _batch(n: int = 64, size: int = 16) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("spec", "expected"), [
    ("none", Augmentation()), ("", Augmentation()), (None, Augmentation()),
    ("crop", Augmentation(crop=True)), ("flip", Augmentation(flip=True)),
    ("flip, crop", Augmentation(crop=True, flip=True)), ("CROP,FLIP", Augmentation(crop=True, flip=True)),
])
def test_parse_accepts_any_order_and_case(spec: str | None, expected: Augmentation) -> None:
    assert parse_augmentation(spec) == expected
    assert parse_augmentation(expected.spec) == expected  # the canonical form parses back


def test_parse_refuses_an_unknown_name_with_a_hint() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown augmentation 'flp'\. Did you mean 'flip'\?"):
        parse_augmentation("crop,flp")


def test_no_augmentation_returns_the_batch_untouched() -> None:
    x = _batch()
    assert augment_batch(x, Augmentation(), torch.Generator()) is x


def test_flip_mirrors_some_images_and_keeps_the_others() -> None:
    x = _batch()
    out = augment_batch(x, Augmentation(flip=True), torch.Generator().manual_seed(1))
    mirrored = [bool(torch.equal(out[i], x[i].flip(2))) for i in range(len(x))]
    kept = [bool(torch.equal(out[i], x[i])) for i in range(len(x))]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image is exactly one of the two
    assert 16 < sum(mirrored) < 48  # about half of 64


def test_crop_is_a_window_of_the_zero_padded_image_at_a_random_offset() -> None:
    x = _batch(n=32, size=16)
    before = x.clone()
    out = augment_batch(x, Augmentation(crop=True), torch.Generator().manual_seed(2))
    assert torch.equal(x, before)  # the input batch is not modified
    assert out.shape == x.shape
    pad = shift_padding_px(16, 16)
    assert pad == 2
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = []
    for i in range(len(x)):
        found = [(r, c) for r in range(2 * pad + 1) for c in range(2 * pad + 1)
                 if torch.equal(out[i], padded[i, :, r:r + 16, c:c + 16])]
        assert found, f"image {i} is not a shifted window"
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # the offsets vary


def test_augmentation_is_seeded() -> None:
    x = _batch()
    both = Augmentation(crop=True, flip=True)
    a = augment_batch(x, both, torch.Generator().manual_seed(3))
    b = augment_batch(x, both, torch.Generator().manual_seed(3))
    c = augment_batch(x, both, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_training_with_augmentation_sees_other_batches_than_without() -> None:
    seen: dict[str, list[torch.Tensor]] = {"none": [], "crop,flip": []}
    x = _batch(n=32, size=8)
    y = torch.zeros(32, dtype=torch.long)
    for augment, batches in seen.items():
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))

        def record(logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor | None,
                   batches: list[torch.Tensor] = batches) -> torch.Tensor:
            batches.append(inputs.clone())
            return F.cross_entropy(logits, labels)

        train_classifier(model, x, y, TrainSpec(epochs=1, batch_size=32, augment=augment), loss_fn=record)
    plain, augmented = seen["none"][0], seen["crop,flip"][0]
    assert plain.shape == augmented.shape
    assert not torch.equal(plain, augmented)
    assert set(map(tuple, plain.flatten(1).tolist())) == set(map(tuple, x.flatten(1).tolist()))
