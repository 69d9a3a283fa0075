"""FitConfig: every option of ``edgeprune fit``, as one typed record (also the Python API's arguments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OUT_DIR = Path("edgeprune-out")

#: the channel-importance criteria (``--importance``); :mod:`edgeprune.prune.importance` registers one each
IMPORTANCE_CRITERIA = ("l1", "bn", "taylor", "nisp", "lasso")
#: the criterion a user gets without ``--importance``: the one that kept the most accuracy at a measured budget.
#: On cifar-resnet56 at a measured 2x without fine-tuning, lasso kept 63.72% top-1 against 21.93% for nisp and
#: 17.40% for l1; with fine-tuning the criteria end within a point or two of each other (docs/benchmarks.md,
#: "Pruning methods at a measured latency budget"; docs/figures/pruning-results/)
DEFAULT_IMPORTANCE = "lasso"

#: sub-networks measured end to end for a latency model's calibration (``profile --calibration-samples``):
#: enough for a scale per kernel kind to be judged by leave-one-out error
CALIBRATION_SAMPLES = 12

#: the fine-tuning learning-rate schedules (``--finetune-schedule``), built by :mod:`edgeprune.train.schedules`
FINETUNE_SCHEDULES = ("rewind", "constant", "one-cycle")

#: the weight-sparsity schedules (``--sparsity-schedule``), TF-MOT's, built by :mod:`edgeprune.train.sparsity_schedule`
SPARSITY_SCHEDULES = ("constant", "polynomial")
#: how weights are ranked for ``--sparsity`` (``--sparsity-scope``): over all layers at once, or per layer
SPARSITY_SCOPES = ("global", "layer")


@dataclass
class FitConfig:
    """Options of a fit run. Each field maps to one CLI flag (``budget`` ↔ ``--budget``).

    Attributes:
        budget: latency budget, e.g. ``"5ms"`` (median of single-inference latency on the target). None: no
            latency budget, a size-only fit (``size_budget`` or ``sparsity`` says what to do): no channel is
            pruned, and the shipped artifact's latency is measured and reported, not judged.
        model: model spec (``demo``, ``cifar-resnet56``, ``torchvision:mobilenet_v2``, ``pkg.mod:factory``).
        weights: weights file (state dict or safetensors); required except for ``demo``.
        data: evaluation data (ImageFolder directory or ``.npz``); the demo's held-out digits for ``demo``.
        train_data: labelled data for fine-tuning; the demo's training digits for ``demo``.
        target: target name or TOML path.
        out: output directory.
        force: replace an output directory that already holds results.
        importance: channel-importance criterion.
        allocation: ``latency`` (search widths on the profiled latency table, then keep them or the uniform cut
            measured within the same latency, whichever distorts the output less on calibration images) or
            ``uniform`` (one keep ratio for every group, bisected on measured latency).
        table_dir: where latency tables are kept (default: the edgeprune cache).
        finetune_epochs: epochs of recovery fine-tuning after pruning (0 = none).
        finetune_lr: peak learning rate of fine-tuning.
        finetune_schedule: ``rewind`` (learning-rate rewinding, Renda et al. 2020: the tail of a step
            schedule replayed from the peak rate), ``constant`` (classic fine-tuning) or ``one-cycle``.
        finetune_augment: augmentation of fine-tuning batches: ``none`` or a comma-separated subset of
            ``crop`` (random shift by up to 1/8 of the image) and ``flip`` (random left-right mirror);
            see ``edgeprune.train.augment``. Off by default: flips are wrong for digits and text.
        train_device: where fine-tuning and the PyTorch scoring passes run: ``auto`` (a CUDA GPU when PyTorch
            sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; mixed precision on GPUs. Latency is still
            measured only on the target.
        train_nproc: fine-tune data-parallel on this many processes of this machine (torch.distributed.run is
            launched for you; under ``torchrun`` itself leave it at 1).
        data_workers: DataLoader worker processes reading a training folder too large for memory.
        in_memory_mb: a training folder whose decoded pixels take more than this (MB) is read batch by batch
            from disk instead of into memory.
        distill: fine-tune against the original model's outputs (knowledge distillation, Hinton et al. 2015)
            as well as the labels; works without labels too.
        distill_features: distillation plus feature hints: the pruned model's stage outputs are also fitted to
            the original's (to its kept channels where channel pruning thinned a stage's output) (see ``edgeprune.train.feature_hints``);
            implies ``distill``. On cifar-resnet56 with depth pruning at 2x, four epochs: 84.37% top-1 on the
            10,000 JPEG test images against 84.31% with logits alone (no measurable gain;
            docs/figures/recipe-probes/).
        qat_epochs: epochs of quantization-aware fine-tuning of the final model (0 = none; NNCF's PyTorch
            quantization), for INT8 runs on ONNX Runtime and OpenVINO targets (LiteRT's quantizer here has none:
            refused). Batch norms are folded, the model quantized with the PTQ preset and fine-tuned with the
            recovery fine-tune's data, loss and seed at a constant ``finetune_lr / 100``; its INT8 artifact replaces
            the post-training-quantized one only when it measures within the budget and is at least as accurate
            (``edgeprune.fit.qat``). Skipped with a warning when the run ships float.
        prune_blocks: before pruning channels, remove whole residual blocks (depth pruning), the ones whose
            removal distorts the output least first, until the measured latency meets the budget or at most
            75% of the removable blocks are gone; channels are then pruned for what is left. It loses more
            before fine-tuning and recovers faster with it: use it with ``finetune_epochs`` (on
            cifar-resnet56 at 2x measured speedup after 4 distillation epochs: 87.7% vs 79.3% top-1,
            docs/figures/pruning-results/cell-{blocks,lasso}-2x-ft4kd.json).
        steps: prune in this many steps towards the budget (geometric latency steps), recovering after
            each (iterative pruning); 1 = one shot. Fine-tune epochs are spent in every step.
        export: comma-separated artifact formats to ship (``onnx,openvino,tflite``); the target's own format
            is always shipped (it is the one measured); None = only that one.
        min_accuracy: fail validation (exit code 3) when an artifact's top-1 on the data is below this fraction.
        min_agreement: the accuracy guard: when the shipped model agrees with the original on fewer than this
            share of the evaluation images (the task's agreement), the fit keeps its results but exits 3 saying the
            model collapsed; None = the task's floor (0.8 for classifiers), 0 = off.
        resume: continue an interrupted run in ``out`` (replaying its measurements and fine-tune checkpoints).
        calib_images: calibration images (batch-norm re-estimation, importance scores, reconstruction, block
            order), drawn from ``calib_data``, else the training data, else a held-out part of ``data`` that
            the accuracy is then not measured on.
        calib_data: images (labels not needed) to calibrate on instead.
        class_map: a file saying which class index each class folder of ``data`` and ``train_data`` is: a JSON
            object ``{"folder": index}`` or lines ``folder index`` (``folder,index``); None = by the folder names
            (ImageNet WordNet ids and integers name the model's classes, other names in sorted order;
            :mod:`edgeprune.data.class_folders`).
        bn_recalibrate: re-estimate batch-norm statistics of the pruned model on the calibration images;
            None = on unless the layers are reconstructed (the refit restores the original pre-BN outputs,
            so the stored statistics stay right, and re-estimating them on a few hundred images would only add
            sampling noise to them).
        reconstruct: refit the layers consuming pruned channels by least squares so that their outputs match
            the original's (He et al. 2017); None = on for ``lasso``, off otherwise.
        eval_images: cap on evaluation images (None = all).
        mean, std: override the model's input normalisation.
        input_shape: override the input shape (C, H, W).
        num_classes: classifier outputs, for architectures built from a spec.
        max_rounds: bound on export-and-measure rounds of the search, per step (confirming a candidate the
            search found within the budget does not count).
        search_headroom: the search aims this fraction under the budget, leaving room for timing drift
            between the search and the confirmation (measured here: 8% drift within a minute on a shared VM).
        seed: seed for every random choice.
        device: URL of an ``edgeprune agent`` on the device; latencies are then measured there. Several URLs
            separated by commas, or a TOML file of ``[[device]]`` tables (``url``, optional ``token``), make a pool
            of identical devices (:mod:`edgeprune.agent.devices`): profiling is spread over all of them.
        device_token: the agents' token (default: the EDGEPRUNE_AGENT_TOKEN environment variable).
        precision: ``fp32`` or ``int8`` (every candidate is quantized by the runtime's own quantizer,
            calibrated on up to 128 calibration images, and the closed loop measures the INT8 artifact against
            the float original); ``auto``: the unpruned model is quantized and measured first, and the run
            searches INT8 candidates when that is at least 1.1x faster than the float original and agrees with
            it on 97% of the evaluation images, float candidates otherwise (:mod:`edgeprune.quantize.choice`);
            where INT8 is faster but agrees too little, a few layers measured to matter most are left in float
            (mixed precision, :mod:`edgeprune.quantize.mixed`; ONNX Runtime and OpenVINO);
            None (the default) = ``auto`` where latency is measured (here or through ``device``), the target's
            own precision where it is predicted from a shipped profile (INT8 is never chosen on an estimate
            unless asked). A default ``auto`` whose original already meets the budget ships the original as it is.
        precision_defaulted: set by the pipeline when ``precision`` was not given (the default ``auto``).
        runtime: the runtime the fit prunes in and ships for: ``auto`` (the unpruned model exported to each
            runtime of the target, checked against PyTorch and timed against the others in alternating rounds;
            the fastest faithful one is chosen, :mod:`edgeprune.fit.runtime_choice`) or one runtime's name; None
            (the default) = ``auto`` for a target that lists several runtimes, the target's own otherwise.
        keep_float: layers (PyTorch module paths, as the report's "Precision per layer" names them) left in
            float in INT8 artifacts; replaces ``auto``'s own choice of them.
        sparsity: weight (unstructured) pruning of the final model after channel pruning: this share of the
            weights of its convolutions and linear layers set to zero, the smallest magnitudes first
            (``torch.nn.utils.prune``; :mod:`edgeprune.prune.sparsity`); with ``finetune_epochs`` it is reached
            gradually during a fine-tune (``sparsity_schedule``), else one shot. The zeros stay in dense tensors:
            the artifact compresses smaller, it does not run faster on a dense runtime. With ``size_budget`` it is
            the most sparsity the run may use. None = no weight pruning (unless ``size_budget`` asks for it).
        sparsity_scope: ``global`` (one magnitude ranking over all the layers, as ``global_unstructured``) or
            ``layer`` (each layer pruned to the same share, as ``l1_unstructured``).
        sparsity_schedule: ``polynomial`` (TF-MOT's PolynomialDecay, Zhu & Gupta 2017: from
            ``sparsity_initial`` to ``sparsity`` between the begin and end steps, cubic) or ``constant`` (the
            final sparsity from the begin step on); ignored without fine-tuning (one shot).
        sparsity_initial: the polynomial schedule's initial sparsity.
        sparsity_begin_step, sparsity_end_step, sparsity_frequency: the schedule's optimiser steps (None: begin at
            0, end after three quarters of the fine-tune, update every 100 steps or often enough for 10 updates;
            :func:`edgeprune.train.sparsity_schedule.default_steps`).
        size_budget: a budget on the shipped artifact's size after zip (deflate) compression: ``2MB``, ``500kB``,
            ``1.5MiB`` or a share of the original model's artifact (``40%``); met by weight pruning of the final
            model (the lowest sparsity up to ``sparsity``, else up to 0.95, whose artifact fits). A budget that
            cannot be met exits with code 2 and the smallest size reachable.
    """

    budget: str | None = "2ms"
    model: str = "demo"
    weights: Path | None = None
    data: Path | None = None
    train_data: Path | None = None
    calib_data: Path | None = None
    class_map: Path | None = None
    target: str = "cpu"
    out: Path = DEFAULT_OUT_DIR
    force: bool = False
    importance: str = DEFAULT_IMPORTANCE
    allocation: str = "latency"
    table_dir: Path | None = None
    finetune_epochs: int = 0
    finetune_lr: float = 0.01
    finetune_schedule: str = "rewind"
    finetune_augment: str = "none"
    train_device: str = "auto"
    train_nproc: int = 1
    data_workers: int = 2
    in_memory_mb: int = 2048
    distill: bool = False
    distill_features: bool = False
    qat_epochs: int = 0
    prune_blocks: bool = False
    steps: int = 1
    resume: bool = False
    export: str | None = None
    min_accuracy: float | None = None
    min_agreement: float | None = None
    calib_images: int = 256
    bn_recalibrate: bool | None = None
    reconstruct: bool | None = None
    eval_images: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    max_rounds: int = 12
    search_headroom: float = 0.05
    seed: int = 0
    device: str | None = None
    device_token: str | None = None
    frozen_modules: tuple[str, ...] = field(default=())
    precision: str | None = None
    precision_defaulted: bool = False
    runtime: str | None = None
    keep_float: tuple[str, ...] = field(default=())
    sparsity: float | None = None
    sparsity_scope: str = "global"
    sparsity_schedule: str = "polynomial"
    sparsity_initial: float = 0.0
    sparsity_begin_step: int | None = None
    sparsity_end_step: int | None = None
    sparsity_frequency: int | None = None
    size_budget: str | None = None
