#!/usr/bin/env bash
# Builds ocwrap as a static binary for this machine's architecture:
#   target/<host triple>/release/ocwrap
# No dynamic loader, glibc or libgcc_s to map at start: it starts faster and
# uses less than half the memory of the default build (BENCHMARKS.md), and
# it runs in any container image, with or without glibc.
# RUSTFLAGS with an explicit --target applies to the binary only, not to the
# build's proc-macros (which cannot be static).
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
# scripts/startup.ld places the code a supervised run executes together
# (scripts/startup-order.py says why and regenerates it). Cargo does not
# track a linker script, so it is linked from a copy named by its content:
# a new script is a new flag, and cargo builds again.
mkdir -p target
script=target/startup-$(sha256sum scripts/startup.ld | cut -c1-12).ld
[ -e "$script" ] || cp scripts/startup.ld "$script"
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C link-arg=-Wl,-T,$PWD/$script" \
  cargo build --release --locked --target "$host" "$@"
echo "target/$host/release/ocwrap"
