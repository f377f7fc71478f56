// The packed tarballs (target/npm/*.tgz, from scripts/package-npm.sh): their
// versions against Cargo.toml (the one place the version lives), the main
// package's optional dependencies, the platform packages' os/cpu and static
// binary, and that nothing runs at install time.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const OUT = process.env.OCWRAP_NPM_DIR ?? path.join(REPO, "target/npm");

/** Cargo.toml's [package] version. */
function cargoVersion() {
  const toml = readFileSync(path.join(REPO, "Cargo.toml"), "utf8");
  const section = toml.split(/^\[/m).find((s) => s.startsWith("package]"));
  const m = /^version\s*=\s*"([^"]+)"/m.exec(section ?? "");
  assert.ok(m, "Cargo.toml has a [package] version");
  return m[1];
}

const VERSION = cargoVersion();
const unpacked = mkdtempSync(path.join(os.tmpdir(), "ocwrap-npm-packages-"));
after(() => rmSync(unpacked, { recursive: true, force: true }));

/** Unpacks a tarball (as npm would) and returns its folder. */
function unpack(file) {
  const dir = path.join(unpacked, path.basename(file, ".tgz"));
  execFileSync("mkdir", ["-p", dir]);
  execFileSync("tar", ["-xzf", file, "-C", dir]);
  return path.join(dir, "package");
}

function tarballs() {
  let names;
  try {
    names = readdirSync(OUT).filter((n) => n.endsWith(".tgz"));
  } catch {
    names = [];
  }
  assert.ok(names.length >= 2, `no tarballs in ${OUT}: run bash scripts/package-npm.sh first`);
  return names.map((n) => path.join(OUT, n));
}

const manifest = (dir) => JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));

test("every tarball carries Cargo.toml's version, in its name and its package.json", () => {
  for (const file of tarballs()) {
    assert.ok(path.basename(file).endsWith(`-${VERSION}.tgz`), `${path.basename(file)} is not version ${VERSION}`);
    assert.equal(manifest(unpack(file)).version, VERSION, `${path.basename(file)}'s package.json`);
  }
});

test("the main package: optional platform packages at the same version, no runtime dependencies, a bin", async () => {
  const dir = unpack(path.join(OUT, `ocwrap-${VERSION}.tgz`));
  const pkg = manifest(dir);
  assert.equal(pkg.name, "ocwrap");
  const { SUPPORTED_PLATFORMS } = await import(path.join(dir, "dist/index.js"));
  assert.deepEqual(
    pkg.optionalDependencies,
    Object.fromEntries(SUPPORTED_PLATFORMS.map((p) => [`@ocwrap/${p}`, VERSION])),
    "one optional dependency per platform the API knows, at exactly this version",
  );
  assert.equal(pkg.dependencies, undefined, "no runtime dependencies");
  assert.deepEqual(pkg.bin, { ocwrap: "dist/launcher.js" });
  assert.equal(pkg.type, "module");
  assert.equal(pkg.exports["."].types, "./dist/index.d.ts");
  assert.match(readFileSync(path.join(dir, "dist/launcher.js"), "utf8"), /^#!\/usr\/bin\/env node\n/);
  assert.ok(statSync(path.join(dir, "dist/launcher.js")).mode & 0o111, "the bin is executable");
  for (const f of ["index.d.ts", "workspace.d.ts", "commands.d.ts", "errors.d.ts", "types.d.ts"]) {
    assert.ok(statSync(path.join(dir, "dist", f)).isFile(), `dist/${f}`);
  }
  assert.ok(readFileSync(path.join(dir, "README.md"), "utf8").includes("startWorkspace"), "the README is the API reference");
});

test("the platform packages: os, cpu, an executable static binary for that CPU", () => {
  const machines = { x64: 62, arm64: 183 };
  const platformFiles = tarballs().filter((f) => path.basename(f).startsWith("ocwrap-linux-"));
  assert.ok(platformFiles.length >= 1, "at least this machine's platform package");
  for (const file of platformFiles) {
    const dir = unpack(file);
    const pkg = manifest(dir);
    const suffix = path.basename(file).slice("ocwrap-".length, -`-${VERSION}.tgz`.length);
    const [osName, cpu] = suffix.split("-");
    assert.equal(pkg.name, `@ocwrap/${suffix}`);
    assert.deepEqual(pkg.os, [osName]);
    assert.deepEqual(pkg.cpu, [cpu]);
    assert.equal(pkg.libc, undefined, "static: installs on glibc and musl alike");
    assert.equal(pkg.bin, undefined, "no bin: the main package's launcher is the one `ocwrap` command");
    const bin = path.join(dir, "bin/ocwrap");
    assert.equal(statSync(bin).mode & 0o777, 0o755, "the binary is executable as packed");
    const elf = readFileSync(bin);
    assert.equal(elf.readUInt32BE(0), 0x7f454c46, "an ELF file");
    assert.equal(elf.readUInt16LE(0x12), machines[cpu], `built for ${cpu}`);
    const phoff = Number(elf.readBigUInt64LE(0x20));
    const size = elf.readUInt16LE(0x36);
    const count = elf.readUInt16LE(0x38);
    for (let i = 0; i < count; i++) {
      assert.notEqual(elf.readUInt32LE(phoff + i * size), 3, "no PT_INTERP: static, no dynamic loader");
    }
    if (`${process.platform}-${process.arch}` === suffix) {
      const out = execFileSync(bin, ["--version"], { encoding: "utf8" });
      assert.equal(out.trim(), `ocwrap ${VERSION}`);
    }
  }
});

test("nothing runs at install time: no install scripts in any package", () => {
  for (const file of tarballs()) {
    const pkg = manifest(unpack(file));
    for (const hook of ["preinstall", "install", "postinstall", "prepare"]) {
      assert.equal(pkg.scripts?.[hook], undefined, `${pkg.name} has a ${hook} script`);
    }
  }
});

test("the sources carry the placeholder version, so Cargo.toml stays the one place", () => {
  const src = JSON.parse(readFileSync(path.join(REPO, "npm/ocwrap/package.json"), "utf8"));
  assert.equal(src.version, "0.0.0-dev");
  assert.deepEqual(src.optionalDependencies, {}, "filled in by scripts/package-npm.sh");
  const lock = JSON.parse(readFileSync(path.join(REPO, "npm/ocwrap/package-lock.json"), "utf8"));
  assert.equal(lock.version, "0.0.0-dev");
  assert.deepEqual(Object.keys(src.devDependencies).sort(), ["@types/node", "typescript"]);
  const script = readFileSync(path.join(REPO, "scripts/package-npm.sh"), "utf8");
  for (const p of ["linux-x64", "linux-arm64"]) assert.match(script, new RegExp(`^\\s+"${p}\\s`, "m"), `${p} declared in the script`);
});

test("the READMEs' TypeScript examples type-check against the package's .d.ts (strict)", () => {
  const tsc = path.join(REPO, "npm/ocwrap/node_modules/typescript/bin/tsc");
  const types = path.join(REPO, "npm/ocwrap/node_modules/@types/node");
  assert.ok(statSync(tsc).isFile(), "npm ci in npm/ocwrap (scripts/package-npm.sh does it) installs TypeScript");
  const dir = mkdtempSync(path.join(os.tmpdir(), "ocwrap-npm-types-"));
  try {
    execFileSync("mkdir", ["-p", path.join(dir, "node_modules/@types")]);
    execFileSync("tar", ["-xzf", path.join(OUT, `ocwrap-${VERSION}.tgz`), "-C", path.join(dir, "node_modules")]);
    execFileSync("mv", [path.join(dir, "node_modules/package"), path.join(dir, "node_modules/ocwrap")]);
    execFileSync("ln", ["-s", types, path.join(dir, "node_modules/@types/node")]);
    const blocks = [];
    for (const readme of ["README.md", "npm/ocwrap/README.md"]) {
      const text = readFileSync(path.join(REPO, readme), "utf8");
      for (const m of text.matchAll(/```ts\n([\s\S]*?)```/g)) {
        if (/from "ocwrap"/.test(m[1])) blocks.push(m[1]);
      }
    }
    assert.ok(blocks.length >= 4, `found ${blocks.length} examples`);
    blocks.forEach((code, i) => writeFileSync(path.join(dir, `example${i}.ts`), code));
    writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"], lib: ["ES2022"] },
      include: ["*.ts"],
    }));
    writeFileSync(path.join(dir, "package.json"), JSON.stringify({ type: "module" }));
    try {
      execFileSync(process.execPath, [tsc, "-p", dir], { encoding: "utf8" });
    } catch (error) {
      assert.fail(`tsc:\n${error.stdout}${error.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
