// Shared helpers of the e2e scenarios: marking processes, finding them in
// /proc, waiting with deadlines, killing by PID (checked), and talking HTTP
// to 127.0.0.1 without keep-alive.
//
// The marker: every scenario runs its programs with E2E_MARK=<random> in the
// environment. Environments are inherited through fork and exec, through
// setsid and double forks, and opencode passes its own to the terminals it
// opens (checked by the scenarios), so "no process has E2E_MARK=<mark> in
// /proc/PID/environ" means "nothing this scenario started is still running".

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const OCWRAP = requiredEnv("OCWRAP_BIN");
export const OPENCODE = requiredEnv("E2E_OPENCODE");
export const APP = requiredEnv("E2E_APP");
export const NEXT = path.join(requiredEnv("E2E_DEPS"), "node_modules", ".bin", "next");
export const OPENCODE_VERSION = "1.18.33";

// Short timings keep the suite fast; the bound on how long ocwrap may take to
// exit after its trigger is grace + kill-timeout + a margin for a loaded
// 2-core machine.
export const GRACE_S = 3;
export const KILL_TIMEOUT_S = 3;
export const MARGIN_MS = 2000;
export const EXIT_BOUND_MS = (GRACE_S + KILL_TIMEOUT_S) * 1000 + MARGIN_MS;
export const TIMING_FLAGS = ["--grace", `${GRACE_S}s`, "--kill-timeout", `${KILL_TIMEOUT_S}s`];

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite with bash tests/e2e/run.sh`);
  return value;
}

/**
 * A scenario's sandbox: a random marker, a temp folder with a private HOME
 * (opencode writes config, data and caches under it) and ocwrap state dir,
 * and the environment every program of the scenario gets.
 */
export function sandbox(name) {
  const mark = `e2e${randomBytes(6).toString("hex")}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), `ocwrap-e2e-${name}-`));
  const home = path.join(dir, "home");
  mkdirSync(home);
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    // A developer's own OCWRAP_* settings must not change the scenarios.
    if (!key.startsWith("OCWRAP_") && !key.startsWith("OPENCODE_")) env[key] = value;
  }
  Object.assign(env, {
    E2E_MARK: mark,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local", "share"),
    XDG_STATE_HOME: path.join(home, ".local", "state"),
    XDG_CACHE_HOME: path.join(home, ".cache"),
    OCWRAP_STATE_DIR: path.join(dir, "state"),
    OCWRAP_OPENCODE: OPENCODE,
    // No network beyond the package registries here: don't let opencode try.
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_SHARE: "1",
    NEXT_TELEMETRY_DISABLED: "1",
  });
  return {
    mark,
    dir,
    env,
    /** A new empty folder for a workspace. */
    folder(label) {
      const folder = path.join(dir, label);
      mkdirSync(folder);
      return folder;
    },
    /**
     * An `opencode` symlink whose path contains the marker, so that the
     * command lines of the servers it starts can be told apart from every
     * other opencode on the machine (`ocwrap reap --match`).
     */
    markedOpencode() {
      const bin = path.join(dir, mark);
      mkdirSync(bin, { recursive: true });
      const link = path.join(bin, "opencode");
      symlinkSync(OPENCODE, link);
      return link;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- /proc -------------------------------------------------------------------

/** Fields of /proc/PID/stat, or null if there is no such process. */
export function stat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // comm (field 2) may hold spaces and parentheses: split after the last ')'.
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

/** A process's identity: its PID plus its start time, immune to PID reuse. */
export function identify(pid) {
  const s = stat(pid);
  assert.ok(s, `process ${pid} does not exist`);
  return { pid, starttime: s.starttime };
}

/** True while the process runs (a zombie has ended; it only awaits reaping). */
export function alive({ pid, starttime }) {
  const s = stat(pid);
  return !!s && s.state !== "Z" && s.state !== "X" && (!starttime || s.starttime === starttime);
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

/** Signals a process ignores, from the SigIgn mask in /proc/PID/status. */
export function ignoredSignals(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mask = BigInt(`0x${status.match(/^SigIgn:\s*([0-9a-f]+)/m)[1]}`);
  const names = { 1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 15: "SIGTERM" };
  return Object.entries(names)
    .filter(([n]) => (mask >> BigInt(Number(n) - 1)) & 1n)
    .map(([, name]) => name);
}

/**
 * Every live process carrying the marker, in its environment or its command
 * line (the test runner itself carries neither).
 */
export function marked(mark) {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const inEnv = environ(pid).includes(`E2E_MARK=${mark}`);
    const line = cmdline(pid);
    if (!inEnv && !line.includes(mark)) continue;
    const s = stat(pid);
    if (!s || s.state === "Z" || s.state === "X") continue;
    found.push({ pid, ppid: s.ppid, sid: s.sid, state: s.state, starttime: s.starttime, cmdline: line });
  }
  return found;
}

export function describeProcesses(list) {
  return list.map((p) => `  ${p.pid} (ppid ${p.ppid}, sid ${p.sid}, ${p.state}) ${p.cmdline}`).join("\n");
}

/** Asserts that nothing carrying the marker is alive. */
export function assertNoneLeft(mark, context = "") {
  const left = marked(mark);
  assert.equal(
    left.length,
    0,
    `${left.length} marked process(es) survived${context ? ` ${context}` : ""}:\n${describeProcesses(left)}`,
  );
}

/**
 * SIGKILLs every marked process, by PID, after checking that the PID still
 * names the process that was found; repeats until none is left (a process
 * can fork while being killed). The after() hook of every scenario.
 */
export async function killMarked(mark) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = marked(mark);
    if (left.length === 0) return [];
    for (const p of left) killChecked(p, "SIGKILL");
    if (Date.now() > deadline) return left;
    await delay(100);
  }
}

/**
 * The after() hook of every scenario: kills whatever it left (by PID), then
 * removes its folder; fails if something could not be killed.
 */
export async function cleanUp(box) {
  if (!box) return;
  const left = await killMarked(box.mark);
  box.remove();
  assert.equal(left.length, 0, `could not kill:\n${describeProcesses(left)}`);
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

// --- waiting -----------------------------------------------------------------

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` until it returns a truthy value (returned) or the
 * deadline passes (throws, naming `what`).
 */
export async function waitFor(what, condition, { timeoutMs = 10_000, intervalMs = 50 } = {}) {
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

// --- running programs ------------------------------------------------------------

/**
 * Starts a program with piped output. `exited` resolves with
 * {code, signal, at} (at: performance.now() when it exited); `lines` holds
 * stdout lines so far and `nextLine(predicate)` waits for one.
 */
export function start(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  const proc = { child, pid: child.pid, stdout: "", stderr: "", lines: [], waiters: [] };
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
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      proc.lines.push(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  });
  child.stderr.on("data", (chunk) => {
    proc.stderr = (proc.stderr + chunk).slice(-200_000);
  });
  proc.nextLine = (what, predicate, timeoutMs = 30_000) =>
    waitFor(what, () => proc.lines.find(predicate) ?? (child.exitCode !== null || child.signalCode !== null
      ? Promise.reject(new Error(`exited (${child.exitCode ?? child.signalCode}) first; stderr:\n${proc.stderr}`))
      : undefined), { timeoutMs });
  return proc;
}

/** Runs a program to completion: {code, signal, stdout, stderr, ms}. */
export async function run(command, args, options = {}, timeoutMs = 60_000) {
  const t0 = performance.now();
  const proc = start(command, args, options);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  const { code, signal, error, at } = await proc.exited;
  clearTimeout(timer);
  // 'exit' can come before the pipes are drained.
  await Promise.all([onceClosed(proc.child.stdout), onceClosed(proc.child.stderr)]);
  if (error) throw error;
  return { code, signal, stdout: proc.stdout, stderr: proc.stderr, ms: at - t0 };
}

function onceClosed(stream) {
  return stream.closed || stream.destroyed ? Promise.resolve() : new Promise((resolve) => stream.once("close", resolve));
}

/**
 * Waits for a started program to exit within `boundMs` of `since`
 * (a performance.now() value) and returns {code, signal, ms}.
 */
export async function exitWithin(proc, since, boundMs, what) {
  const timeout = Math.max(0, since + boundMs + 5000 - performance.now());
  let timer;
  const result = await Promise.race([
    proc.exited,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeout);
    }),
  ]);
  clearTimeout(timer);
  assert.ok(result, `${what} still running ${Math.round(timeout)} ms after its trigger; stderr:\n${proc.stderr}`);
  const ms = result.at - since;
  assert.ok(
    ms <= boundMs,
    `${what} took ${Math.round(ms)} ms to exit, more than grace + kill-timeout + margin = ${boundMs} ms; stderr:\n${proc.stderr}`,
  );
  return { code: result.code, signal: result.signal, ms };
}

// --- HTTP on 127.0.0.1 -----------------------------------------------------------

/**
 * One HTTP request with JSON in and out, on a fresh connection that is
 * closed afterwards (no keep-alive socket may hold a server's shutdown up).
 */
export function request(method, url, body, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    assert.equal(target.hostname, "127.0.0.1", `refusing to talk to ${target.hostname}: only 127.0.0.1`);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      target,
      {
        method,
        agent: false,
        headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {},
        timeout: timeoutMs,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => {
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, json, text });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// --- opencode ---------------------------------------------------------------

/** GET /global/health of an opencode server. */
export async function health(url) {
  const res = await request("GET", new URL("/global/health", url).href, undefined, 10_000);
  assert.equal(res.status, 200, `GET /global/health: ${res.status} ${res.text}`);
  return res.json;
}

/**
 * Opens a terminal through opencode's HTTP API (POST /pty, opencode
 * 1.18.33: body {command, args, cwd, title, env}) whose shell backgrounds a
 * `setsid` process and then waits; returns the PTY record and the identity
 * of the setsid process, found as the child of the terminal's shell.
 */
export async function openTerminal(url, folder) {
  const script = "setsid sleep 86400 </dev/null >/dev/null 2>&1 & exec sleep 86400";
  const target = new URL("/pty", url);
  target.searchParams.set("directory", folder);
  const res = await request("POST", target.href, { command: "/bin/sh", args: ["-c", script], title: "e2e" });
  assert.equal(res.status, 200, `POST /pty: ${res.status} ${res.text}`);
  const pty = res.json;
  assert.ok(pty.pid > 0, `POST /pty returned no pid: ${res.text}`);
  const setsid = await waitFor(`the setsid child of terminal ${pty.pid}`, () =>
    childrenOf(pty.pid).find((p) => p.sid === p.pid),
  );
  return { pty, setsid: identify(setsid.pid) };
}

export function childrenOf(ppid) {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s && s.ppid === ppid && s.state !== "Z") found.push(s);
  }
  return found;
}

/**
 * Asserts what every setsid process in these scenarios must be: alive, the
 * leader of a session of its own, and carrying the marker.
 */
export function assertDetachedAndMarked(proc, mark, what) {
  assert.ok(alive(proc), `${what} (${proc.pid}) is not running`);
  const s = stat(proc.pid);
  assert.equal(s.sid, proc.pid, `${what} (${proc.pid}) is not a session leader (sid ${s.sid})`);
  assert.ok(
    environ(proc.pid).includes(`E2E_MARK=${mark}`),
    `${what} (${proc.pid}) did not inherit E2E_MARK: the zero-survivor check would be blind to it`,
  );
}
