#!/usr/bin/env bash
# End-to-end suite for ocwrap with the real programs: opencode-ai (pinned in
# package-lock.json) and a Next.js workspace-manager app (./app).
#
#   bash tests/e2e/run.sh [node --test args...] [FILE.test.mjs...]
#
# Nothing is written into the source tree: dependencies are installed with
# `npm ci` into a cache folder keyed by the lockfile's hash, and the app is
# built in a copy inside it keyed by the app's hash. Any install or build
# failure fails the suite; nothing is skipped silently.
#
# Environment:
#   OCWRAP_E2E_CACHE   cache folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/ocwrap-e2e)
#   OCWRAP_BIN         ocwrap binary (default: build target/debug/ocwrap)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${OCWRAP_E2E_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ocwrap-e2e}

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v node >/dev/null || die "node is not installed (Node.js 20.9 or newer is needed)"
command -v npm >/dev/null || die "npm is not installed"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=9)?0:1)' \
  || die "Node.js $(node --version) is too old: Next.js 15 and this suite need 20.9 or newer"
command -v setsid >/dev/null || die "setsid (util-linux) is needed by the fixtures"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# Runs a command with the XDG base dirs in a scratch folder: even
# `opencode --version` creates opencode's config, data, state and cache dirs.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
with_scratch_xdg() {
  XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" \
    XDG_STATE_HOME="$scratch/state" XDG_CACHE_HOME="$scratch/cache" "$@"
}

mkdir -p "$cache"
# Two runs sharing a cache (a developer and CI on one machine) take turns at
# installing and building; the tests themselves then run concurrently.
exec 9>"$cache/.lock"
flock 9

# --- dependencies: npm ci into $cache/deps-<lock hash> -----------------------
deps_hash=$(hash_of "$here/package.json" "$here/package-lock.json")
deps="$cache/deps-$deps_hash"
if [[ ! -f "$deps/.installed" ]]; then
  say "installing pinned dependencies into $deps (npm ci)"
  rm -rf "$deps"
  mkdir -p "$deps"
  cp "$here/package.json" "$here/package-lock.json" "$deps/"
  # opencode-ai's postinstall runs `opencode --version`, which creates
  # opencode's XDG config, data, state and cache dirs: keep them out of $HOME.
  (cd "$deps" && with_scratch_xdg npm ci --no-audit --no-fund) || die "npm ci failed in $deps"
  touch "$deps/.installed"
else
  say "dependencies: $deps (lock unchanged, reusing)"
fi
# Keep only the install that matches the current lockfile.
for old in "$cache"/deps-*; do
  [[ "$old" == "$deps" || ! -d "$old" ]] || rm -rf "$old"
done

opencode="$deps/node_modules/.bin/opencode"
want_opencode=$(node -p 'require(process.argv[1]).packages["node_modules/opencode-ai"].version' "$here/package-lock.json")
got_opencode=$(with_scratch_xdg "$opencode" --version 2>/dev/null) \
  || die "$opencode does not run (did opencode-ai's postinstall place the platform binary?)"
[[ "$got_opencode" == "$want_opencode" ]] \
  || die "$opencode reports version '$got_opencode', the lockfile pins $want_opencode"

# --- the Next.js app: built in a copy, $deps/app-<app hash> -------------------
# Inside $deps so that module resolution from the app finds $deps/node_modules.
app_hash=$(cd "$here/app" && find . -type f -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)
app="$deps/app-$app_hash"
if [[ ! -f "$app/.built" ]]; then
  say "building the Next.js app in $app (next build)"
  rm -rf "$app"
  cp -R "$here/app" "$app"
  (cd "$app" && NEXT_TELEMETRY_DISABLED=1 "$deps/node_modules/.bin/next" build) \
    || die "next build failed in $app"
  touch "$app/.built"
else
  say "app: $app (sources unchanged, reusing the build)"
fi
for old in "$deps"/app-*; do
  [[ "$old" == "$app" || ! -d "$old" ]] || rm -rf "$old"
done

flock -u 9

# --- ocwrap ------------------------------------------------------------------
if [[ -z "${OCWRAP_BIN:-}" ]]; then
  # Always ask cargo: it is a no-op when the binary is current, and a stale
  # binary would test yesterday's ocwrap.
  say "building ocwrap (cargo build --locked)"
  (cd "$repo" && cargo build --locked) || die "cargo build --locked failed"
  OCWRAP_BIN="$repo/target/debug/ocwrap"
fi
[[ -x "$OCWRAP_BIN" ]] || die "OCWRAP_BIN=$OCWRAP_BIN is not executable"

# --- the scenarios -----------------------------------------------------------
export OCWRAP_BIN E2E_OPENCODE="$opencode" E2E_DEPS="$deps" E2E_APP="$app"
export NEXT_TELEMETRY_DISABLED=1
say "ocwrap: $OCWRAP_BIN; opencode: $opencode ($got_opencode); app: $app"
cd "$here"
# One test file at a time: each file starts several opencode servers and a
# Next.js server, which is all that 2 cores take while keeping timings honest.
# Arguments go to `node --test`; without a *.test.mjs among them, all files run.
files=(./*.test.mjs)
for arg in "$@"; do [[ "$arg" == *.test.mjs ]] && files=(); done
rm -rf "$scratch"
trap - EXIT
exec node --test --test-concurrency=1 "$@" "${files[@]}"
