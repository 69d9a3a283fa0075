"""Recovery steps built for classifiers only are refused for detectors and segmenters with one line;
--prune-blocks is not among them (depth pruning orders blocks by the task's own output distortion)."""

from __future__ import annotations

import pytest

from edgeprune.config import FitConfig
from edgeprune.errors import InputError
from edgeprune.fit.inputs import _refuse_unsupported


@pytest.mark.parametrize("settings, flag", [({"qat_epochs": 1}, "--qat-epochs"),
                                            ({"distill_features": True}, "--distill-features")])
def test_classifier_only_steps_are_refused_by_name(settings: dict, flag: str) -> None:
    with pytest.raises(InputError, match=f"{flag} is not available for detectors yet"):
        _refuse_unsupported(FitConfig(model="demo", **settings), "detectors")


def test_depth_pruning_is_allowed_for_every_task() -> None:
    _refuse_unsupported(FitConfig(model="demo", prune_blocks=True), "segmentation models")
