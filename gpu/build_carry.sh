#!/usr/bin/env bash
# Builds gpu-carry/ for gpu/run_cuda.sh: release, stripped, gzipped test and bench binaries per GPU feature
# that builds on this machine, and the Vulkan loader. Run from anywhere inside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
rm -rf gpu-carry
mkdir -p gpu-carry/lib
for kind in wgpu cuda; do
  feature="burn-$kind"
  if [ "$kind" = cuda ] && [ ! -e "$HOME/.local/share/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed" ] \
      && ! timeout 20 curl -sfI https://github.com >/dev/null 2>&1; then
    echo "$feature: skipped, GitHub is unreachable and no LLVM bundle is cached (see gpu/README.md)"
    continue
  fi
  if ! cargo test --release --features "$feature" --test burn_gpu --no-run --message-format=json \
      > "/tmp/carry-$kind.json" 2> "/tmp/carry-$kind.log"; then
    echo "$feature: does not build here (see /tmp/carry-$kind.log and gpu/README.md)"
    continue
  fi
  test_bin=$(grep '"executable":"[^"]*burn_gpu-' "/tmp/carry-$kind.json" | sed 's/.*"executable":"\([^"]*\)".*/\1/' | tail -1)
  cargo build --release --features "$feature" --example bench_gpu 2>> "/tmp/carry-$kind.log"
  mkdir -p "gpu-carry/$kind"
  cp "$test_bin" "gpu-carry/$kind/burn_gpu"
  cp "$target/release/examples/bench_gpu" "gpu-carry/$kind/bench_gpu"
  strip "gpu-carry/$kind/burn_gpu" "gpu-carry/$kind/bench_gpu"
  gzip -9 "gpu-carry/$kind/burn_gpu" "gpu-carry/$kind/bench_gpu"   # about 4x smaller
  echo "$feature: built"
done
cp -L "$(ldconfig -p | awk '/libvulkan\.so\.1 / {print $NF; exit}')" gpu-carry/lib/libvulkan.so.1
du -sh gpu-carry gpu-carry/*
