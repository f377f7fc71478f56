// The static binary shipped in the platform package runs with no libc at
// all: in a chroot that holds only that binary, a static busybox (Debian's
// busybox-static, for a shell, sleep and setsid), /proc and /dev/null (as
// every container has; `spawn` gives opencode /dev/null as stdin). Root only
// (chroot, mount, mknod); npm/test.sh installs busybox-static.
//
// "Nothing left" here: no live process whose root (/proc/PID/root) is the
// chroot, and every PID recorded is gone.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const OUT = process.env.OCWRAP_NPM_DIR ?? path.join(REPO, "target/npm");
const BUSYBOX = process.env.OCWRAP_TEST_BUSYBOX ?? "/bin/busybox";

let root;
let mounted = false;

/** An executable of the host, found on PATH or in the sbin folders. */
function hostTool(name) {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const dir of dirs) {
    try {
      const file = path.join(dir, name);
      readFileSync(file, { flag: "r" }).length;
      return file;
    } catch {
      // not there
    }
  }
  throw new Error(`${name} is not installed (coreutils / util-linux)`);
}
const CHROOT = hostTool("chroot");

function isStatic(file) {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) return false;
  const phoff = Number(b.readBigUInt64LE(0x20));
  for (let i = 0; i < b.readUInt16LE(0x38); i++) {
    if (b.readUInt32LE(phoff + i * b.readUInt16LE(0x36)) === 3) return false;
  }
  return true;
}

/** Live processes whose root directory is the chroot. */
function inChroot() {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let where;
    try {
      where = readlinkSync(`/proc/${entry}/root`);
    } catch {
      continue;
    }
    if (where !== root) continue;
    let state = "";
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    } catch {
      continue;
    }
    if (state !== "Z" && state !== "X") found.push(Number(entry));
  }
  return found;
}

function killLeftovers() {
  for (let round = 0; round < 50; round++) {
    const left = inChroot();
    if (left.length === 0) return [];
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    spawnSync("sleep", ["0.1"]);
  }
  return inChroot();
}

/** Runs a command in the chroot: {code, signal, stdout, stderr}. */
function inside(args, timeoutMs = 20_000) {
  const r = spawnSync(CHROOT, [root, ...args], { encoding: "utf8", timeout: timeoutMs, env: { PATH: "/bin", HOME: "/tmp" } });
  if (r.error) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  assert.equal(process.getuid(), 0, "the chroot test needs root (chroot, mount -t proc)");
  assert.ok(isStatic(BUSYBOX), `${BUSYBOX} is not a static executable: apt-get install busybox-static`);
  const version = /^version\s*=\s*"([^"]+)"/m.exec(readFileSync(path.join(REPO, "Cargo.toml"), "utf8"))[1];
  const tarball = path.join(OUT, `ocwrap-linux-${process.arch}-${version}.tgz`);
  root = mkdtempSync(path.join(os.tmpdir(), "ocwrap-chroot-"));
  const unpacked = path.join(root, ".pkg");
  mkdirSync(unpacked);
  execFileSync("tar", ["-xzf", tarball, "-C", unpacked]);
  copyFileSync(path.join(unpacked, "package/bin/ocwrap"), path.join(root, "ocwrap"));
  chmodSync(path.join(root, "ocwrap"), 0o755);
  rmSync(unpacked, { recursive: true });
  for (const dir of ["bin", "dev", "proc", "tmp", "work"]) mkdirSync(path.join(root, dir));
  execFileSync(hostTool("mknod"), ["-m", "666", path.join(root, "dev/null"), "c", "1", "3"]);
  chmodSync(path.join(root, "tmp"), 0o1777);
  copyFileSync(BUSYBOX, path.join(root, "bin/busybox"));
  chmodSync(path.join(root, "bin/busybox"), 0o755);
  for (const applet of ["sh", "sleep", "setsid", "echo", "cat"]) symlinkSync("busybox", path.join(root, "bin", applet));
  writeFileSync(
    path.join(root, "fake-opencode"),
    [
      "#!/bin/sh",
      "echo 'opencode server listening on http://127.0.0.1:4999'",
      "/bin/setsid /bin/sleep 1000 </dev/null >/dev/null 2>&1 &",
      "exec /bin/sleep 1000",
      "",
    ].join("\n"),
  );
  chmodSync(path.join(root, "fake-opencode"), 0o755);
  execFileSync("mount", ["-t", "proc", "proc", path.join(root, "proc")]);
  mounted = true;
});

after(() => {
  const left = root ? killLeftovers() : [];
  if (mounted) spawnSync("umount", ["-l", path.join(root, "proc")]);
  if (root) rmSync(root, { recursive: true, force: true });
  assert.deepEqual(left, [], "processes in the chroot that could not be killed");
});

test("the chroot has no libc, no dynamic loader, only static executables", () => {
  const files = execFileSync("find", [root, "-path", path.join(root, "proc"), "-prune", "-o", "-type", "f", "-print"], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((f) => path.relative(root, f))
    .sort();
  assert.deepEqual(files, ["bin/busybox", "fake-opencode", "ocwrap"], "and /dev/null, a device");
  assert.ok(isStatic(path.join(root, "ocwrap")), "the shipped binary is static");
});

test("ocwrap --version", () => {
  const r = inside(["/ocwrap", "--version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ocwrap \d+\.\d+\.\d+/);
});

test("ocwrap -- CMD: CMD's exit status, and its setsid and background children are ended", () => {
  const r = inside(["/ocwrap", "--grace", "1s", "--kill-timeout", "2s", "--", "/bin/sh", "-c",
    "/bin/setsid /bin/sleep 1000 </dev/null >/dev/null 2>&1 & /bin/sleep 1000 </dev/null >/dev/null 2>&1 & exit 3"]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /ocwrap: teardown \(CMD exited with status 3\) done in .*: 2 ended on the stop signal, 0 killed, 0 survivors/);
  assert.deepEqual(inChroot(), [], "nothing left in the chroot");
});

test("ocwrap spawn, ps and stop of a workspace", () => {
  const state = ["--state-dir", "/tmp/state"];
  // Detached: a foreground spawn would end with the shell that started it.
  const r = inside(["/ocwrap", "spawn", "--detach", "--json", "--grace", "1s", "--kill-timeout", "2s",
    "--opencode", "/fake-opencode", ...state, "/work"]);
  assert.equal(r.code, 0, r.stderr);
  const spawned = JSON.parse(r.stdout.trim().split("\n")[0]);
  assert.equal(spawned.url, "http://127.0.0.1:4999");
  assert.equal(spawned.folder, "/work");
  assert.equal(spawned.log, `/tmp/state/${spawned.id}.log`, "a detached workspace logs to the state dir");
  const ps = inside(["/ocwrap", "ps", "--json", ...state]);
  assert.equal(ps.code, 0, ps.stderr);
  const [row] = JSON.parse(ps.stdout);
  assert.equal(row.id, spawned.id);
  assert.equal(row.state, "running");
  assert.ok(row.processes >= 3, `supervisor, opencode, the setsid child: ${row.processes}`);
  assert.ok(inChroot().includes(spawned.pids.supervisor));
  const stop = inside(["/ocwrap", "stop", spawned.id, ...state]);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(inChroot(), [], "nothing left in the chroot after ocwrap stop");
});
