// Shared helpers of the npm package's tests: a sandbox per test file (a
// private ocwrap state dir, a marker in every process's environment), the
// API under test, the fake opencode, finding processes in /proc, waiting
// with deadlines and killing by PID (after checking the PID's start time).
//
// "Nothing left" is checked two ways: every PID a test recorded (supervisor,
// opencode, the fake opencode's children, setsid ones included) is gone,
// compared with its start time so that a reused PID is not a survivor; and
// no live process carries the sandbox's marker (NPMTEST_MARK=<mark>, inherited
// by everything the test starts) in its environment or command line.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");
export const FAKE_OPENCODE = path.join(REPO, "tests/fixtures/fake-opencode");

function requiredEnv(name, hint) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${hint} (run the suite with bash npm/test.sh)`);
  return value;
}

/** The ocwrap binary under test (target/debug/ocwrap). */
export const BINARY = requiredEnv("OCWRAP_BINARY", "point it at the ocwrap binary to test");
/** The built main package (target/npm/stage/ocwrap). */
export const PACKAGE_DIR = requiredEnv("OCWRAP_NPM_PACKAGE", "point it at the staged main package");

/** The API under test, imported from the built package. */
export const api = await import(pathToFileURL(path.join(PACKAGE_DIR, "dist/index.js")).href);
export const LAUNCHER = path.join(PACKAGE_DIR, "dist/launcher.js");

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Grace and kill-timeout the tests give workspaces, and the bound on a
// teardown: grace + kill-timeout + a margin for a loaded 2-core machine.
export const GRACE_MS = 1000;
export const KILL_TIMEOUT_MS = 2000;
export const BOUND_MS = GRACE_MS + KILL_TIMEOUT_MS + 3000;

/**
 * A test file's sandbox: a marker, a temp folder holding the state dir and
 * workspace folders, and an `opencode` symlink to the fake whose path holds
 * the marker (so `reap --match <mark>` can only ever match our servers).
 * The marker and the state dir are put in process.env, so that everything
 * this process starts (the binary, opencode, their children) carries them.
 */
export function sandbox(name) {
  const mark = `npmtest${randomBytes(6).toString("hex")}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), `ocwrap-npm-${name}-`));
  const stateDir = path.join(dir, "state");
  const bin = path.join(dir, mark);
  mkdirSync(bin);
  const opencode = path.join(bin, "opencode");
  symlinkSync(FAKE_OPENCODE, opencode);
  for (const key of Object.keys(process.env)) {
    // A developer's own OCWRAP_* settings must not change the tests.
    if (key.startsWith("OCWRAP_") && !["OCWRAP_BINARY", "OCWRAP_NPM_PACKAGE"].includes(key) && !key.startsWith("OCWRAP_TEST_")) {
      delete process.env[key];
    }
    if (key.startsWith("FAKE_OPENCODE")) delete process.env[key];
  }
  process.env.NPMTEST_MARK = mark;
  process.env.OCWRAP_STATE_DIR = stateDir;
  process.env.OCWRAP_OPENCODE = opencode;
  let n = 0;
  return {
    mark,
    dir,
    stateDir,
    opencode,
    /** A new empty folder for a workspace. */
    folder(label = "ws") {
      const folder = path.join(dir, `${label}-${++n}`);
      mkdirSync(folder);
      return folder;
    },
    /** A path for the fake opencode's PID file (FAKE_OPENCODE_PIDS). */
    pidsFile(label = "pids") {
      return path.join(dir, `${label}-${++n}.json`);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- /proc -------------------------------------------------------------------

export function stat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" ");
  return {
    pid,
    comm: text.slice(text.indexOf("(") + 1, close),
    state: rest[0],
    ppid: Number(rest[1]),
    pgid: Number(rest[2]),
    sid: Number(rest[3]),
    starttime: rest[19],
  };
}

/** A process's identity: PID plus start time. */
export function identify(pid) {
  const s = stat(pid);
  assert.ok(s, `process ${pid} does not exist`);
  return { pid, starttime: s.starttime };
}

/**
 * A process's identity if it still runs; if it has already ended, an
 * identity that no process matches (so it counts as gone, never as a
 * survivor that reused the PID).
 */
export function identifyIfRunning(pid) {
  const s = stat(pid);
  return { pid, starttime: s && s.state !== "Z" ? s.starttime : "ended" };
}

/** True while the process runs (a zombie has ended). */
export function alive(proc) {
  const s = stat(proc.pid);
  return !!s && s.state !== "Z" && s.state !== "X" && (!proc.starttime || s.starttime === proc.starttime);
}

export function environ(pid) {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "";
  }
}

/** Every live process carrying the marker in its environment or command line. */
export function marked(mark) {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const line = cmdline(pid);
    if (!environ(pid).includes(`NPMTEST_MARK=${mark}`) && !line.includes(mark)) continue;
    const s = stat(pid);
    if (!s || s.state === "Z" || s.state === "X") continue;
    found.push({ pid, ppid: s.ppid, state: s.state, starttime: s.starttime, cmdline: line });
  }
  return found;
}

export function describe(list) {
  return list.map((p) => `  ${p.pid} (ppid ${p.ppid}, ${p.state}) ${p.cmdline}`).join("\n");
}

/** Asserts that none of these processes (identities) is alive. */
export function assertGone(procs, context) {
  const left = procs.filter(alive);
  assert.equal(left.length, 0, `still running ${context}: ${left.map((p) => `${p.pid} (${cmdline(p.pid)})`).join(", ")}`);
}

/** Asserts that nothing carrying the marker is alive. */
export function assertNoneLeft(mark, context) {
  const left = marked(mark);
  assert.equal(left.length, 0, `${left.length} marked process(es) survived ${context}:\n${describe(left)}`);
}

/** Signals a process only if its PID still names the same process. */
export function killChecked(proc, signal) {
  if (!alive(proc)) return false;
  try {
    process.kill(proc.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGKILLs, by PID, every marked process (checking each PID's start time),
 * until none is left or 10 s have passed; returns what could not be killed.
 */
export async function killMarked(mark) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = marked(mark);
    if (left.length === 0 || Date.now() > deadline) return left;
    for (const p of left) killChecked(p, "SIGKILL");
    await delay(100);
  }
}

/**
 * The after() hook: kills every marked process left, removes the sandbox,
 * and fails if one could not be killed.
 */
export async function cleanUp(box) {
  if (!box) return;
  const left = await killMarked(box.mark);
  box.remove();
  assert.equal(left.length, 0, `could not kill:\n${describe(left)}`);
}

// --- waiting -----------------------------------------------------------------

/** Polls `condition` until it returns a truthy value or the deadline passes. */
export async function waitFor(what, condition, { timeoutMs = 10_000, intervalMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ""}`);
    }
    await delay(intervalMs);
  }
}

/** Waits until every one of these processes has ended. */
export function waitGone(procs, what, timeoutMs = BOUND_MS) {
  return waitFor(what, () => procs.every((p) => !alive(p)), { timeoutMs });
}

/**
 * The fake opencode's PID file: {opencode, children: [plain, setsid]}, as
 * identities (read once it exists).
 */
export async function fakePids(file) {
  const info = await waitFor(`the fake opencode's PID file ${file}`, () =>
    existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined,
  );
  // The fake may already have ended (a crash, a teardown under way).
  return {
    info,
    opencode: identifyIfRunning(info.opencode),
    children: info.children.map((pid) => identifyIfRunning(pid)),
    all() {
      return [this.opencode, ...this.children];
    },
  };
}

// --- programs -----------------------------------------------------------------

/**
 * Starts a program with piped output: `exited` resolves with
 * {code, signal, at}; `stdout`/`stderr` accumulate; `line(predicate)` waits
 * for a stdout line.
 */
export function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  const proc = { child, pid: child.pid, stdout: "", stderr: "", lines: [] };
  proc.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal, at: performance.now() }));
    child.on("error", (error) => resolve({ code: null, signal: null, error, at: performance.now() }));
  });
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  let pending = "";
  child.stdout.on("data", (chunk) => {
    proc.stdout += chunk;
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      proc.lines.push(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  child.stderr.on("data", (chunk) => (proc.stderr = (proc.stderr + chunk).slice(-100_000)));
  proc.line = (what, predicate, timeoutMs = 20_000) =>
    waitFor(what, () => {
      const found = proc.lines.find(predicate);
      if (found !== undefined) return found;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`exited (${child.exitCode ?? child.signalCode}) first; stderr:\n${proc.stderr}`);
      }
      return undefined;
    }, { timeoutMs });
  return proc;
}

/** Resolves with the result, or rejects if the promise takes longer than `ms`. */
export async function within(ms, promise, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Asserts that `promise` rejects with an OcwrapError and returns it. */
export async function rejectsWith(promise, check) {
  let error;
  await assert.rejects(promise, (e) => {
    error = e;
    return true;
  });
  assert.ok(error instanceof api.OcwrapError, `expected an OcwrapError, got ${error?.stack ?? error}`);
  for (const [key, value] of Object.entries(check)) {
    if (value instanceof RegExp) assert.match(String(error[key]), value, `error.${key}`);
    else assert.deepEqual(error[key], value, `error.${key} (message: ${error.message})`);
  }
  return error;
}
