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
  if [ "$kind" = cuda ]; then
    bash gpu/offline_llvm.sh   # Debian's LLVM for cubecl-llvm's build, no GitHub (gpu/README.md)
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
  # The CUDA binaries link LLVM statically (about 100 MB stripped): xz takes them to about 22 MB.
  if [ "$kind" = cuda ]; then
    xz -6 -T2 "gpu-carry/$kind/burn_gpu" "gpu-carry/$kind/bench_gpu"
  else
    gzip -9 "gpu-carry/$kind/burn_gpu" "gpu-carry/$kind/bench_gpu"   # about 4x smaller
  fi
  echo "$feature: built"
done
cp -L "$(ldconfig -p | awk '/libvulkan\.so\.1 / {print $NF; exit}')" gpu-carry/lib/libvulkan.so.1
# The binaries need glibc >= 2.36 (Debian 12's): for an older device, Debian's loader and the few
# libraries they link, run as `gpu-carry/glibc/ld-linux-x86-64.so.2 --library-path gpu-carry/glibc BIN`.
mkdir -p gpu-carry/glibc
for lib in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libz.so.1 libzstd.so.1 libstdc++.so.6 libgcc_s.so.1 libxml2.so.2 libz3.so.4 libicuuc.so.72 libicudata.so.72 liblzma.so.5; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  [ -n "$path" ] && cp -L "$path" gpu-carry/glibc/ && xz -6 "gpu-carry/glibc/$lib"
done
du -sh gpu-carry gpu-carry/*
