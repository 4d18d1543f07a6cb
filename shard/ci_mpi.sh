#!/usr/bin/env bash
# The sharded solve across MPI processes (chandir::shard with the `mpi` feature): builds the
# check (examples/shard_mpi.rs) and runs it under mpirun with 2, 3 and 4 processes; every rank
# compares its part with the unsharded result and the job exits non-zero on any failure.
# Installs Debian's MPICH (and libclang, for the bindings) when missing. Call from .ci/run:
#   step "sharded smoothing under mpirun (2, 3, 4 processes)"; shard/ci_mpi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mpicc >/dev/null 2>&1 || ! command -v mpirun >/dev/null 2>&1 \
  || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    mpich libmpich-dev libclang-dev >/dev/null
fi
cargo clippy -p chandir --all-targets --features mpi -- -D warnings
cargo build --release -p chandir --features mpi --example shard_mpi
target_dir="${CARGO_TARGET_DIR:-target}"
# MPICH runs as root without flags (Open MPI's mpirun would need --allow-run-as-root); loopback only.
launcher=mpirun
if command -v mpirun.mpich >/dev/null 2>&1; then launcher=mpirun.mpich; fi
for n in 2 3 4; do
  echo "-- $launcher -n $n shard_mpi"
  timeout 600 "$launcher" -n "$n" "$target_dir/release/examples/shard_mpi"
done
