#!/usr/bin/env bash
# Build Horovod 0.28.1 (the last release) against the installed CPU/GPU PyTorch.
# Its CMake files ask for C++14, which PyTorch >= 2.1 headers reject; we switch them to C++17.
# Usage: scripts/install_horovod.sh PYTHON   (the interpreter of the target environment)
set -euo pipefail
py="${1:-python3}"
version=0.28.1
if "$py" -c "import horovod.torch" 2>/dev/null; then
  echo "horovod already installed"; exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" -m pip install -q "cmake<4" packaging psutil pyyaml cloudpickle  # its bundled gloo predates CMake 4
"$py" -m pip download -q --no-deps --no-binary :all: "horovod==$version" -d "$work"
tar -xzf "$work"/horovod-$version.tar.gz -C "$work"
src="$work/horovod-$version"
sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/' "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
grep -q "CMAKE_CXX_STANDARD 17" "$src/horovod/torch/CMakeLists.txt"
cmake_bin="$(dirname "$("$py" -c 'import sys; print(sys.executable)')")"
# With CUDA (a CUDA build of torch and nvcc on PATH), GPU tensors must be reduced by NCCL: without
# HOROVOD_GPU_OPERATIONS=NCCL they would go through host memory and gloo. jeoparda refuses such a
# build on a GPU at start-up (hvd.nccl_built()).
gpu_ops=()
if "$py" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" && command -v nvcc >/dev/null; then
  gpu_ops=(HOROVOD_GPU_OPERATIONS=NCCL)
  echo "CUDA found: building Horovod with HOROVOD_GPU_OPERATIONS=NCCL"
fi
env PATH="$cmake_bin:$PATH" HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
  HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 HOROVOD_CPU_OPERATIONS=gloo "${gpu_ops[@]}" MAKEFLAGS="-j$(nproc)" \
  "$py" -m pip install -q --no-build-isolation --no-deps "$src"
"$py" -c "import horovod.torch as hvd; print('horovod', hvd.__version__ if hasattr(hvd, '__version__') else '$version', 'built')"
