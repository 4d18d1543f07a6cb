#!/usr/bin/env bash
# Lays Debian's LLVM 22 where tracel-llvm-bundler looks for its LLVM 23.1 bundle, so that the
# `burn-cuda` feature (cubecl-cuda -> cubecl-llvm -> tracel-llvm-bundler) builds without GitHub.
#
# The bundler's build script downloads a prebuilt LLVM from GitHub unless its directory
# (`config::llvm_path()`: $XDG_DATA_HOME or ~/.local/share, then tracel/tracel-llvm-23.1.0-4)
# already holds an empty `.tracel-llvm-installed` file; it then only runs `bin/llvm-config` there.
# Where GitHub is reachable none of this is needed: `cargo build --features burn-cuda` fetches the
# bundle itself. Idempotent: a second run changes nothing (and so rebuilds nothing).
set -euo pipefail

llvm_major=22
bundle_version=23.1.0-4
packages=(llvm-${llvm_major}-dev libpolly-${llvm_major}-dev libzstd-dev)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "offline_llvm: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

real_config="$(command -v llvm-config-${llvm_major} || echo /usr/lib/llvm-${llvm_major}/bin/llvm-config)"
prefix="$("$real_config" --prefix)"
bundle="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-${bundle_version}"

# Build the directory aside, compare it with what is there, and swap it in only if it differs:
# the sentinel's timestamp is what makes cubecl-llvm's build script run again.
mkdir -p "${bundle%/*}"
staging="$(mktemp -d "${bundle%/*}/.staging.XXXXXX")"
chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT
for part in lib include share; do ln -s "$prefix/$part" "$staging/$part"; done
mkdir "$staging/bin"
for tool in "$prefix"/bin/*; do
  [ "$(basename "$tool")" = llvm-config ] || ln -s "$tool" "$staging/bin/$(basename "$tool")"
done
# The bundler turns an absolute `.../libz3.so` in `--system-libs` into `-llibz3`, which does not
# exist: hand it `-lz3` instead.
cat >"$staging/bin/llvm-config" <<EOF
#!/bin/sh
"$prefix/bin/llvm-config" "\$@" | sed -e 's#[^ ]*/lib\\([A-Za-z0-9_+-]*\\)\\.so\\b#-l\\1#g'
EOF
chmod +x "$staging/bin/llvm-config"

listing() { (cd "$1" && find . -mindepth 1 -printf '%p %l\n' | grep -v '^./.tracel-llvm-installed' | sort; cat bin/llvm-config); }
if [ -f "$bundle/.tracel-llvm-installed" ] && [ "$(listing "$staging")" = "$(listing "$bundle")" ]; then
  echo "offline_llvm: $bundle already points at $prefix (LLVM $("$real_config" --version))"
  exit 0
fi
touch "$staging/.tracel-llvm-installed"
rm -rf "$bundle"
mv "$staging" "$bundle"
trap - EXIT
echo "offline_llvm: $bundle -> $prefix (LLVM $("$real_config" --version))"
