#!/usr/bin/env bash
# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
# The checks that need a CUDA GPU, as one script (run on a GPU machine from the repository root;
# writes logs and results to $OUT, default ./cuda_out): the engine's tests on CUDA, then the
# benchmark on CUDA for two models with the Accelerate disk-offload peer on the same GPU. Needs
# python3 with torch, torchvision, safetensors, tqdm, numpy, opencv, accelerate and pytest; no ROS.
# About 6 minutes on an H200.
set -uo pipefail
OUT=${OUT:-cuda_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision',
torchvision.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest test/engine/test_cuda.py test/engine/test_executor.py \
  test/engine/test_policy.py test/engine/test_slicing_profile.py -q -p no:cacheprovider \
  2>&1 | tee "$OUT/pytest.log"
timeout 420 python3 -m demand_layering_ros.cli.main bench \
  --models resnet152 fasterrcnn_resnet50_fpn --device cuda --threads 8 \
  --configs preload sequential_min pipelined_min near_zero accelerate_disk \
  --frames 20 --warmup 3 --stores "$PWD/.stores" --json "$OUT/cuda_bench.json" \
  --table "$OUT/cuda_table.md" 2>&1 | tee "$OUT/bench.log"
