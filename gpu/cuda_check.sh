#!/usr/bin/env bash
# Every device kernel compiled for NVIDIA sm_80 and sm_90 through both of cubecl-cuda's compilers,
# without a GPU: the CUDA C++ of cubecl-cpp through NVRTC, the PTX of cubecl-llvm, both assembled
# by ptxas -v (registers, spills, shared memory, occupancy). Ends with `N passed, M failed`; exits
# non-zero on any failure or spill. NVRTC and ptxas come from NVIDIA's pip wheels, which run
# without a driver. Options: --markdown FILE (the table, for gpu/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

bash gpu/offline_llvm.sh

tools="${CHANDIR_NVIDIA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/chandir/nvidia-tools-12.9}"
if [ ! -x "$tools/nvidia/cuda_nvcc/bin/ptxas" ] || ! ls "$tools"/nvidia/cuda_nvrtc/lib/libnvrtc.so.* >/dev/null 2>&1; then
  echo "cuda_check: installing NVRTC, ptxas and the CUDA headers (pip wheels) into $tools"
  python3 -m pip install -q --disable-pip-version-check --target "$tools" \
    "nvidia-cuda-nvrtc-cu12==12.9.*" "nvidia-cuda-nvcc-cu12==12.9.*" "nvidia-cuda-runtime-cu12==12.9.*"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --quiet --profile "${CHANDIR_CUDA_PROFILE:-release}" --features burn-cuda --example cuda_kernels -- "$out"
python3 gpu/cuda_check.py "$out" "$tools" "$@"
