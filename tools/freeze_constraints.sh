#!/usr/bin/env bash
# Pin every package installed in .venv (edgeprune itself excepted) into constraints.txt, the versions the
# benchmarks in docs/benchmarks.md are measured with. Run after an upgrade, and say so beside any rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Versions edgeprune's benchmarks and CI run with (tools/freeze_constraints.sh, $(date -u +%Y-%m-%d))."
  echo "# Used by 'make' (pip install -c constraints.txt); see docs/install.md."
  echo "# CUDA's packages (nvidia-*, cuda-*, triton) are not pinned: torch's own wheel decides them, and a CPU-only"
  echo "# torch (docs/install.md) has none."
  .venv/bin/python -m pip freeze --exclude-editable | grep -v -i '^edgeprune' | sed 's/ @ file:.*//' \
    | grep -v -E '^(nvidia-|cuda-|triton==)' | sed 's/+cpu$//'
} > constraints.txt.tmp
mv constraints.txt.tmp constraints.txt
