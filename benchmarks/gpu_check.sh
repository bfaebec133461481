#!/usr/bin/env bash
# One prepared GPU check (under 5 minutes on one H200): install from the working tree,
# synthesise the default dataset, train with validation on for 3 epochs on the GPU (paper
# configuration), generate and evaluate with --device cuda, run bench_gpu.py and pytest -m gpu.
# Usage: bash benchmarks/gpu_check.sh [OUT]   (OUT defaults to ${OUT:-/tmp}/gpu-check)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-/tmp}/gpu-check}"
mkdir -p "$OUT"
say() { echo; echo ">> $* ($(date +%T))"; }

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 --version

say "install (a venv with the working tree; torch as found on the machine if it has CUDA)"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  python3 -m venv --system-site-packages "$OUT/venv"
else
  python3 -m venv "$OUT/venv"
fi
"$OUT/venv/bin/pip" install -q -e ".[dev]"
PY="$OUT/venv/bin/python"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA in this venv'; print(torch.__version__, torch.cuda.get_device_name(0))"

say "synthetic data"
"$PY" -m regnn synth --out "$OUT/data" --seed 0

say "train, paper configuration, validation on, 3 epochs, one GPU"
/usr/bin/time -v "$PY" -m regnn train --data "$OUT/data" --out "$OUT/run" --config paper \
  --accelerator gpu --devices 1 --epochs 3 --no-progress 2> "$OUT/train.time" | tail -5
grep -E "Elapsed|Maximum resident" "$OUT/train.time" || true
"$PY" - "$OUT/run" <<'PYEOF'
import json, sys
t = json.load(open(f"{sys.argv[1]}/train.json"))
print({k: t[k] for k in t if "windows" in k or k in ("epochs", "wall_s", "device")})
PYEOF

say "generate --device cuda, evaluate --device cuda"
"$PY" -m regnn generate --run "$OUT/run" --data "$OUT/data" --out "$OUT/pred" --device cuda \
  --no-progress
"$PY" -m regnn evaluate --data "$OUT/data" --pred "$OUT/pred" --device cuda --no-progress

say "bench_gpu.py"
"$PY" benchmarks/bench_gpu.py --device cuda

say "pytest -m gpu"
"$PY" -m pytest -q -m gpu tests

say "gpu_check passed"
