#!/usr/bin/env bash
# Builds ocwrap's npm packages and writes their tarballs to target/npm/:
#
#   ocwrap-VERSION.tgz              ocwrap: the `ocwrap` launcher and the typed
#                                   JS API (ESM + .d.ts, no dependencies but
#                                   the platform packages, all optional)
#   ocwrap-linux-x64-VERSION.tgz    @ocwrap/linux-x64: the static binary
#   ocwrap-linux-arm64-VERSION.tgz  @ocwrap/linux-arm64 (where it can be built)
#
#   bash scripts/package-npm.sh [--all-platforms]
#
# The version is Cargo.toml's, stamped into every package.json here (the
# sources in npm/ carry the placeholder 0.0.0-dev). The packages are staged
# in target/npm/stage/ and packed with `npm pack`; nothing in the source
# tree changes except npm/ocwrap/node_modules (TypeScript, from `npm ci`).
#
# A platform whose binary cannot be built on this machine (no Rust standard
# library for its target, or no linker for it) is skipped with a message
# saying what is missing; with --all-platforms (a release) that is an error.
# See "Cutting a release" in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

say() { printf 'package-npm: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

all_platforms=false
for arg in "$@"; do
  case "$arg" in
    --all-platforms) all_platforms=true ;;
    *) die "unknown argument '$arg' (usage: scripts/package-npm.sh [--all-platforms])" ;;
  esac
done

# --- the platforms ---------------------------------------------------------------
# One package per CPU: "<npm name suffix> <os> <cpu> <Rust target> <ELF e_machine>".
# The binary is static (crt-static: no dynamic loader, no libc to find at
# run time), so one build runs on glibc and musl systems (Alpine, distroless)
# alike: the packages set no `libc` field, and there are no separate -musl
# packages (biome and others need those only because their binaries are
# dynamically linked).
platforms=(
  "linux-x64   linux x64   x86_64-unknown-linux-gnu  62"
  "linux-arm64 linux arm64 aarch64-unknown-linux-gnu 183"
)

command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
command -v cargo >/dev/null || die "cargo is not installed"

version=$(cargo metadata --no-deps --offline --format-version 1 \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const p=JSON.parse(s).packages.find(p=>p.name==="ocwrap");process.stdout.write(p.version)})')
[[ -n "$version" ]] || die "cannot read the version from Cargo.toml"
say "version $version (from Cargo.toml)"

out="$repo/target/npm"
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage"
rm -f "$out"/*.tgz

host=$(rustc -vV | sed -n 's/^host: //p')

# Checks that FILE is an ELF executable for e_machine MACHINE with no
# PT_INTERP header (no dynamic loader: static).
check_static() {
  node - "$1" "$2" <<'EOF'
const fs = require("fs");
const [file, machine] = process.argv.slice(2);
const b = fs.readFileSync(file);
const fail = (m) => { console.error(`package-npm: error: ${file}: ${m}`); process.exit(1); };
if (b.readUInt32BE(0) !== 0x7f454c46) fail("not an ELF file");
if (b[4] !== 2 || b[5] !== 1) fail("not a 64-bit little-endian ELF file");
if (b.readUInt16LE(0x12) !== Number(machine)) fail(`e_machine is ${b.readUInt16LE(0x12)}, expected ${machine}`);
const phoff = Number(b.readBigUInt64LE(0x20)), size = b.readUInt16LE(0x36), count = b.readUInt16LE(0x38);
for (let i = 0; i < count; i++) {
  if (b.readUInt32LE(phoff + i * size) === 3) fail("has a PT_INTERP header: it is dynamically linked, not static");
}
EOF
}

# Builds the static binary for TARGET and prints its path; returns 1 (after
# saying why) when this machine cannot build it.
build_binary() {
  local target=$1
  if [[ "$target" == "$host" ]]; then
    bash scripts/build-static.sh >&2 || die "scripts/build-static.sh failed"
    echo "$repo/target/$target/release/ocwrap"
    return 0
  fi
  local libdir
  libdir=$(rustc --print target-libdir --target "$target" 2>/dev/null || true)
  if [[ -z "$libdir" ]] || ! compgen -G "$libdir/libstd-*" >/dev/null; then
    say "cannot build $target here: no Rust standard library for it (rustup target add $target)"
    return 1
  fi
  local arch=${target%%-*}
  local linker="$arch-linux-gnu-gcc"
  if ! command -v "$linker" >/dev/null; then
    say "cannot build $target here: no $linker (apt-get install gcc-${arch/_/-}-linux-gnu libc6-dev-${arch/aarch64/arm64}-cross)"
    return 1
  fi
  local var
  var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER"
  env "$var=$linker" RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --locked --target "$target" >&2 || die "cargo build --target $target failed"
  echo "$repo/target/$target/release/ocwrap"
}

# --- platform packages -----------------------------------------------------------
built=()
optional_json="{}"
for row in "${platforms[@]}"; do
  read -r suffix os cpu target machine <<<"$row"
  name="@ocwrap/$suffix"
  optional_json=$(node -e 'const o=JSON.parse(process.argv[1]);o[process.argv[2]]=process.argv[3];console.log(JSON.stringify(o))' \
    "$optional_json" "$name" "$version")
  if ! binary=$(build_binary "$target"); then
    if $all_platforms; then die "--all-platforms: $name cannot be built on this machine"; fi
    say "skipping $name (declared in the main package's optionalDependencies, not built here)"
    continue
  fi
  check_static "$binary" "$machine"
  dir="$stage/$suffix"
  mkdir -p "$dir/bin"
  install -m 0755 "$binary" "$dir/bin/ocwrap"
  node - "$dir/package.json" "$name" "$version" "$os" "$cpu" "$target" <<'EOF'
const fs = require("fs");
const [file, name, version, os, cpu, target] = process.argv.slice(2);
const manifest = {
  name,
  version,
  description: `The ocwrap binary for ${os}-${cpu} (static, ${target}); installed by the ocwrap package`,
  license: "MIT",
  os: [os],
  cpu: [cpu],
  files: ["bin/ocwrap", "README.md"],
  preferUnplugged: true,
};
fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
EOF
  cat >"$dir/README.md" <<EOF
# $name

The \`ocwrap\` binary for $os-$cpu, built static (\`$target\`, no libc
needed at run time: it runs on glibc and musl systems and in distroless
images). Do not install it directly: install [\`ocwrap\`](https://www.npmjs.com/package/ocwrap),
which depends on it as an optional dependency that npm installs only on
$os-$cpu, and whose \`ocwrap\` command and JS API find it.
EOF
  built+=("$dir")
  say "staged $name ($binary)"
done
[[ ${#built[@]} -gt 0 ]] || die "no platform package could be built"

# --- the main package ------------------------------------------------------------
src="$repo/npm/ocwrap"
say "installing TypeScript (npm ci in npm/ocwrap)"
(cd "$src" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed in npm/ocwrap"
main="$stage/ocwrap"
mkdir -p "$main"
node "$src/node_modules/typescript/bin/tsc" -p "$src/tsconfig.json" --outDir "$main/dist" \
  || die "tsc failed"
chmod 0755 "$main/dist/launcher.js"
cp "$src/README.md" "$main/README.md"
node - "$src/package.json" "$main/package.json" "$version" "$optional_json" <<'EOF'
const fs = require("fs");
const [from, to, version, optional] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(from, "utf8"));
manifest.version = version;
manifest.optionalDependencies = JSON.parse(optional);
// Nothing runs at install: the binary is a plain file of its package.
delete manifest.scripts;
delete manifest.devDependencies;
fs.writeFileSync(to, JSON.stringify(manifest, null, 2) + "\n");
EOF

# --- pack ------------------------------------------------------------------------
for dir in "$main" "${built[@]}"; do
  (cd "$dir" && npm pack --ignore-scripts --pack-destination "$out" --loglevel=error >/dev/null) \
    || die "npm pack failed in $dir"
done
say "wrote:"
ls -1 "$out"/*.tgz
