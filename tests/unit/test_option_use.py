"""edgeprune.fit.option_use: every fit option either changes the run or is refused in one line (issue 37, item 6).

The walk below takes every option of ``edgeprune fit --help``, gives it alone (a non-default value on top of the
defaults), and checks that the up-front check refuses it or that it is listed in ``CHANGES_THE_RUN_ALONE`` with
where its effect shows. A new option that is neither fails the walk until someone says which it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from edgeprune.cli.fit_cmd import add_parser
from edgeprune.config import FitConfig
from edgeprune.errors import InputError
from edgeprune.fit.option_use import given, moot_options, refuse_options_without_effect

#: options that change a default fit when given alone, and where that shows (report.json key or the run itself)
CHANGES_THE_RUN_ALONE = {
    "budget": "budget_ms", "model": "model.spec", "weights": "model.weights", "data": "evaluation.dataset",
    "train_data": "calibration.source", "calib_data": "calibration.source", "target": "target",
    "out": "files", "force": "replaces results", "finetune_epochs": "finetune (or options_not_used)",
    "train_device": "scoring and fine-tuning placement", "in_memory_mb": "how --train-data is read",
    "qat_epochs": "method.qat", "prune_blocks": "method.blocks (or options_not_used)", "steps": "method.steps",
    "resume": "resume", "calib_images": "calibration.images", "precision": "final.latency.precision",
    "keep_float": "layer_precision (a warning when the run is not INT8)", "sparsity": "sparsity",
    "size_budget": "size.size_budget", "bn_recalibrate": "calibration.bn_recalibrated (or options_not_used)",
    "reconstruct": "calibration.reconstruction (or options_not_used)", "eval_images": "evaluation.images",
    "mean": "model.preprocessing", "std": "model.preprocessing", "input_shape": "model.input_shape",
    "num_classes": "the model's head", "frozen_modules": "frozen", "max_rounds": "search.rounds",
    "search_headroom": "method.search_headroom", "seed": "every random choice", "device": "final.latency.source",
    "export": "artifacts", "min_accuracy": "status", "min_agreement": "accuracy_guard.floor",
    "importance": "method.importance (or options_not_used)", "allocation": "method.allocation",
    "table_dir": "where the latency table is kept and read", "runtime": "runtime_choice",
}
#: CLI-only flags that are not fields of FitConfig (they shape the terminal, not the run)
CLI_ONLY = {"json", "help", "config"}

#: a non-default value per field, as the CLI would set it
SAMPLE = {
    "budget": "50%", "model": "cifar-resnet20", "weights": Path("w.pt"), "data": Path("d.npz"),
    "train_data": Path("t.npz"), "calib_data": Path("c.npz"), "target": "cpu-openvino", "out": Path("elsewhere"),
    "force": True, "importance": "l1", "allocation": "uniform", "table_dir": Path("tables"), "finetune_epochs": 2,
    "finetune_lr": 0.05, "finetune_schedule": "constant", "finetune_augment": "crop,flip", "train_device": "cpu",
    "train_nproc": 2, "data_workers": 4, "in_memory_mb": 100, "distill": True, "distill_features": True,
    "qat_epochs": 1, "prune_blocks": True, "steps": 2, "resume": True, "export": "onnx,tflite", "min_accuracy": 0.5,
    "min_agreement": 0.5, "calib_images": 64, "bn_recalibrate": True, "reconstruct": True, "eval_images": 100,
    "mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2), "input_shape": (3, 32, 32), "num_classes": 10,
    "max_rounds": 6, "search_headroom": 0.1, "seed": 1, "device": "http://pi:8000", "device_token": "secret",
    "frozen_modules": ("head",), "precision": "int8", "keep_float": ("head",), "sparsity": 0.5,
    "sparsity_scope": "layer", "sparsity_schedule": "constant", "sparsity_initial": 0.1, "sparsity_begin_step": 5,
    "sparsity_end_step": 50, "sparsity_frequency": 5, "size_budget": "40%", "class_map": Path("classes.json"),
    "runtime": "auto",
}


def _fit_options() -> dict[str, str]:
    """dest → flag for every option of ``edgeprune fit``."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    fit = parser._subparsers._group_actions[0].choices["fit"]  # type: ignore[union-attr]
    return {a.dest: a.option_strings[-1] for a in fit._actions if a.option_strings}


def _field(dest: str) -> str:
    return {"augment": "finetune_augment", "freeze": "frozen_modules"}.get(dest, dest)


@pytest.mark.parametrize("dest", sorted(_fit_options()))
def test_every_option_given_alone_changes_the_run_or_is_refused(dest: str) -> None:
    if dest in CLI_ONLY:
        return
    name = _field(dest)
    assert name in {f.name for f in dataclasses.fields(FitConfig)}, f"--{dest} sets no FitConfig field"
    assert name in SAMPLE, f"give the walk a non-default value for {name}"
    config = FitConfig(**{name: SAMPLE[name]})
    assert name in given(config)
    try:
        refuse_options_without_effect(config)
    except InputError as exc:
        assert name not in CHANGES_THE_RUN_ALONE, f"{name} is listed as effective alone but refused: {exc}"
        assert "\n" not in str(exc) and _fit_options()[dest] in str(exc), str(exc)  # one line, naming the flag
        return
    assert name in CHANGES_THE_RUN_ALONE, f"--{dest} alone is neither refused nor said to change the run"


@pytest.mark.parametrize(("settings", "message"), [
    ({"finetune_lr": 0.05}, "--finetune-lr shapes a fine-tune, and this run has none"),
    ({"distill": True}, "--distill shapes a fine-tune"),
    ({"sparsity": 0.8, "sparsity_schedule": "constant"}, "without --finetune-epochs the weights are pruned in one shot"),
    ({"sparsity_initial": 0.2, "finetune_epochs": 1}, "--sparsity-initial shapes weight pruning, and this run has none"),
    ({"budget": None, "sparsity": 0.5, "max_rounds": 5}, "a size-only fit (no --budget) has none"),
    ({"allocation": "uniform", "table_dir": Path("t")}, "--allocation uniform uses none"),
    ({"device_token": "x"}, "no --device is given"),
])
def test_options_without_effect_are_refused_in_one_line(settings: dict, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        refuse_options_without_effect(FitConfig(**settings))


@pytest.mark.parametrize("settings", [
    {"finetune_epochs": 2, "finetune_lr": 0.05, "distill": True, "finetune_augment": "crop,flip"},
    {"qat_epochs": 1, "finetune_lr": 0.001},
    {"sparsity": 0.8, "finetune_epochs": 2, "sparsity_schedule": "constant", "sparsity_frequency": 5},
    {"size_budget": "40%", "finetune_epochs": 1, "sparsity_initial": 0.3},
    {"budget": "2ms", "finetune_lr": 0.01},  # the default value given explicitly changes nothing and is not refused
])
def test_options_with_their_prerequisites_pass(settings: dict) -> None:
    refuse_options_without_effect(FitConfig(**settings))


def test_a_run_that_pruned_nothing_says_its_fine_tune_and_recovery_options_were_not_used(
        caplog: pytest.LogCaptureFixture) -> None:
    config = FitConfig(finetune_epochs=2, reconstruct=True, prune_blocks=True, importance="l1")
    with caplog.at_level("WARNING", logger="edgeprune"):
        entries = moot_options(config, finetuned=False, pruned=False, scored=False,
                               why_unpruned="INT8 alone met the budget")
    assert [e["option"] for e in entries] == ["--finetune-epochs", "--reconstruct", "--prune-blocks", "--importance"]
    assert all("INT8 alone met the budget" in e["reason"] for e in entries)
    assert len([r for r in caplog.records if "was given but not used" in r.getMessage()]) == 4


def test_a_run_that_fine_tuned_and_pruned_has_nothing_to_say() -> None:
    config = FitConfig(finetune_epochs=2, reconstruct=True, importance="l1")
    assert moot_options(config, finetuned=True, pruned=True, scored=True, why_unpruned="") == []
