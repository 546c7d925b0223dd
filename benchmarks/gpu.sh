#!/usr/bin/env bash
# Every GPU figure of the README's benchmark table, in one go, from the repository root of an
# environment with the package installed (pip install -e .) on a CUDA machine: throughput
# eager and compiled against timm, the step profile and host-sync audit, the EMA + callbacks
# overhead, and the JPEG dataloader on this host's cores. Compiling four models on both sides
# takes most of the time (expect 20-30 minutes on one H100).
set -euo pipefail
export PYTHONUNBUFFERED=1
python benchmarks/throughput.py --device cuda --modes eager compiled
python benchmarks/profile_step.py --device cuda --compile
python benchmarks/callback_overhead.py --accelerator gpu --model inception_resnet_v2 --width 1 \
    --size 299 --batch 128 --precision bf16-mixed --repeats 2
python benchmarks/dataloader.py
