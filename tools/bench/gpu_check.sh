#!/bin/bash
# The GPU checks, as one prepared run on a machine with a CUDA GPU (session 22 ran it on a borrowed NVIDIA H200):
# the --train-device tests (GPU cases included), a demo fit fine-tuned on the GPU, and the scale-out throughput
# bench with a `cuda` mode, written to $OUT (default ./gpu-check-out).
#
#   bash tools/bench/gpu_check.sh COMMIT [fit]
#
# COMMIT is recorded in the bench's provenance (a copied checkout's .git can be missing or stale); `fit` adds the
# demo fit. Where the machine lacks Python packages (torch-pruning, say), put their wheels in .whl/; where ../shared
# is absent, put cifar10_train_lossless_subset5085.npz and resnet56-4bfd9763.th in .devdata/ (the bench falls back to
# random images and weights without them; throughput does not depend on the pixels).
set -u
OUT=${OUT:-gpu-check-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 EDGEPRUNE_BENCH_COMMIT=${1:-unknown} EDGEPRUNE_CACHE_DIR=${EDGEPRUNE_CACHE_DIR:-/tmp/epcache}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
if [ -d .devdata ]; then
  mkdir -p ../shared/data/cifar10 ../shared/data/models/cifar10/akamaster_resnet
  cp .devdata/cifar10_train_lossless_subset5085.npz ../shared/data/cifar10/
  cp .devdata/resnet56-4bfd9763.th ../shared/data/models/cifar10/akamaster_resnet/
fi
{ date -u; nvidia-smi -L; nproc; python3 -c "import torch,onnxruntime,numpy;print('torch',torch.__version__,torch.cuda.get_device_name(0),'ort',onnxruntime.__version__,'numpy',numpy.__version__)"; } 2>&1 | tee "$OUT/env.txt"
echo "== pytest"; timeout 150 python3 -m pytest -q -p no:cacheprovider tests/train/test_train_device.py 2>&1 | tail -20 | tee "$OUT/pytest.txt"
if [ "${2:-}" = fit ]; then
  echo "== fit"; date -u
  timeout 240 python3 -m edgeprune fit --model demo --target cpu --budget 60% --train-device cuda --finetune-epochs 2 \
    --precision fp32 --out /tmp/fitcuda --force 2>&1 | tail -40 | tee "$OUT/fit.txt"
  cp /tmp/fitcuda/report.json "$OUT/fit-report.json" 2>/dev/null; cp /tmp/fitcuda/report.md "$OUT/fit-report.md" 2>/dev/null
fi
echo "== bench"; date -u
timeout 330 python3 tools/bench/scale_out.py --images 1024 --rounds 3 --modes 1proc-1thread,2proc-ddp,cuda \
  --results "$OUT/throughput-gpu.json" 2>&1 | tail -12 | tee "$OUT/bench.txt"
date -u
