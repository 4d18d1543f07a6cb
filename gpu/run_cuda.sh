#!/usr/bin/env bash
# The real-GPU check, run from the repository root on the lent GPU machine (no Rust toolchain, no
# network): the device-kernel tests, then the benchmark, from binaries prebuilt on the build
# machine and carried in gpu-carry/ (see gpu/README.md). Logs go to $OUT; a short table is printed
# last. Finishes in well under 6 minutes.
#
#   gpu-carry/cuda/{burn_gpu,bench_gpu}.gz  built with --features burn-cuda (when they could be built)
#   gpu-carry/wgpu/{burn_gpu,bench_gpu}.gz  built with --features burn-wgpu (WGSL; f64 where the adapter has SHADER_F64)
#   gpu-carry/lib/libvulkan.so.1            the Vulkan loader, for machines without one
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
CARRY=gpu-carry
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
summary=()
note() { echo "$*"; summary+=("$*"); }

{
  echo "== machine"; uname -a; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
  echo "== CUDA"; ls -d /usr/local/cuda* 2>/dev/null; echo "CUDA_PATH=${CUDA_PATH:-}"
  ldconfig -p 2>/dev/null | grep -E "libcuda\.so|libnvrtc|libvulkan|GLX_nvidia|nvidia-vulkan" | head
  echo "== Vulkan ICDs"; ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null
} > "$OUT/machine.log" 2>&1
cat "$OUT/machine.log"

# cubecl-cuda looks for a CUDA install directory (CUDA_PATH, else /usr/local/cuda) for NVRTC's
# headers; cudarc loads libcuda and libnvrtc at run time.
if [ -z "${CUDA_PATH:-}" ]; then
  for dir in /usr/local/cuda /usr/local/cuda-*; do [ -d "$dir" ] && export CUDA_PATH="$dir" && break; done
fi

unpack() { # kind: gunzip the carried binaries into $OUT/bin-kind
  local dir="$OUT/bin-$1"
  mkdir -p "$dir"
  for name in burn_gpu bench_gpu; do
    if [ -f "$CARRY/$1/$name.xz" ]; then
      xz -dc "$CARRY/$1/$name.xz" > "$dir/$name" 2>/dev/null \
        || python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$CARRY/$1/$name.xz" "$dir/$name" \
        || return 1
    else
      [ -f "$CARRY/$1/$name.gz" ] || return 1
      gzip -dc "$CARRY/$1/$name.gz" > "$dir/$name" 2>/dev/null \
        || python3 -c "import gzip,shutil,sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$CARRY/$1/$name.gz" "$dir/$name" \
        || return 1
    fi
    chmod +x "$dir/$name"
  done
}

# The binaries were linked against glibc 2.36 (Debian 12); an older device runs them through the
# carried loader and libraries.
runner=()
glibc=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$' || echo 0)
if [ -d "$CARRY/glibc" ] && [ "$(printf '%s\n2.36\n' "$glibc" | sort -V | head -1)" != 2.36 ]; then
  mkdir -p "$OUT/glibc"
  for f in "$CARRY"/glibc/*.xz; do
    xz -dc "$f" > "$OUT/glibc/$(basename "$f" .xz)" 2>/dev/null \
      || python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$f" "$OUT/glibc/$(basename "$f" .xz)"
  done
  chmod +x "$OUT/glibc/ld-linux-x86-64.so.2"
  runner=("$OUT/glibc/ld-linux-x86-64.so.2" --library-path "$OUT/glibc")
  note "glibc $glibc on the device: binaries run through the carried glibc 2.36 loader"
fi

run_suite() { # kind device
  local kind=$1 device=$2 dir=$OUT/bin-$1
  unpack "$kind" || { note "$kind: no binaries in $CARRY/$kind"; return 1; }
  echo "== $kind tests on $device ($(elapsed) s)"
  CHANDIR_TEST_DEVICE=$device timeout 240 "${runner[@]}" "$dir/burn_gpu" --test-threads 1 > "$OUT/$kind-tests.log" 2>&1
  local rc=$?
  tail -5 "$OUT/$kind-tests.log"
  note "$kind tests: $(grep -E '^test result' "$OUT/$kind-tests.log" | tail -1) (exit $rc)"
  echo "== $kind benchmark on $device ($(elapsed) s)"
  timeout 150 "${runner[@]}" "$dir/bench_gpu" --device "$device" --budget-ms 400 > "$OUT/$kind-bench.log" 2>&1
  note "$kind bench: exit $? (table in $OUT/$kind-bench.log)"
  cat "$OUT/$kind-bench.log"
}

if [ -n "${CHANDIR_CARRY_DEVICE:-}" ]; then
  # Rehearsal on the build machine, e.g. CHANDIR_CARRY_DEVICE=wgpu-cpu (lavapipe).
  run_suite wgpu "$CHANDIR_CARRY_DEVICE"
elif [ -f "$CARRY/cuda/burn_gpu.xz" ] || [ -f "$CARRY/cuda/burn_gpu.gz" ]; then
  run_suite cuda cuda
else
  note "cuda: not built (see gpu/README.md: the cuda feature needs LLVM downloaded from GitHub at build time)"
  # burn's wgpu backend on the GPU's own Vulkan driver, if the machine exposes one.
  export LD_LIBRARY_PATH="$PWD/$CARRY/lib:${LD_LIBRARY_PATH:-}"
  if ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
    glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0/ {print $NF; exit}')
    if [ -n "$glx" ]; then
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3"}}\n' "$glx" > "$OUT/nvidia_icd.json"
      export VK_ICD_FILENAMES="$OUT/nvidia_icd.json"
      note "wgpu: no Vulkan ICD file, using $glx"
    fi
  fi
  if ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1 || [ -n "${VK_ICD_FILENAMES:-}" ]; then
    run_suite wgpu wgpu
  else
    note "wgpu: no NVIDIA Vulkan driver on this machine; nothing ran on the GPU"
  fi
fi

echo
echo "== summary ($(elapsed) s)"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
