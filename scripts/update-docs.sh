#!/usr/bin/env bash
# Regenerates the checked-in completions and man page from the clap
# definition. tests/docs.rs fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet
bin=target/debug/ocwrap
for shell in bash zsh fish elvish powershell; do
  case $shell in
    bash) out=completions/ocwrap.bash ;;
    zsh) out=completions/_ocwrap ;;
    fish) out=completions/ocwrap.fish ;;
    elvish) out=completions/ocwrap.elv ;;
    powershell) out=completions/_ocwrap.ps1 ;;
  esac
  "$bin" completions "$shell" > "$out"
done
"$bin" man > man/ocwrap.1
echo "completions/ and man/ocwrap.1 regenerated"
