#!/usr/bin/env bash
# Prints the folder that holds the e2e suite's pinned dependencies (real
# next, react, react-dom and opencode-ai in node_modules/), installing them
# first if needed. It is the very cache tests/e2e/run.sh uses,
# ${OCWRAP_E2E_CACHE:-$XDG_CACHE_HOME/ocwrap-e2e}/deps-<hash of package.json
# and package-lock.json>, with the same lock file, so the two suites never
# download the same packages twice.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
e2e="$repo/tests/e2e"
cache=${OCWRAP_E2E_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ocwrap-e2e}
say() { printf 'npm-e2e: %s\n' "$*" >&2; }

hash=$(cat "$e2e/package.json" "$e2e/package-lock.json" | sha256sum | cut -c1-16)
deps="$cache/deps-$hash"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [[ ! -f "$deps/.installed" ]]; then
  say "installing the e2e suite's pinned dependencies into $deps (npm ci)"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  rm -rf "$deps"
  mkdir -p "$deps"
  cp "$e2e/package.json" "$e2e/package-lock.json" "$deps/"
  # opencode-ai's postinstall runs `opencode --version`, which creates
  # opencode's XDG dirs: keep them out of $HOME (as tests/e2e/run.sh does).
  (cd "$deps" && XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" \
    XDG_STATE_HOME="$scratch/state" XDG_CACHE_HOME="$scratch/cache" \
    npm ci --no-audit --no-fund >&2) || { say "error: npm ci failed in $deps"; exit 1; }
  touch "$deps/.installed"
fi
for bin in next opencode; do
  [[ -x "$deps/node_modules/.bin/$bin" ]] || { say "error: $deps/node_modules/.bin/$bin is missing"; exit 1; }
done
echo "$deps"
