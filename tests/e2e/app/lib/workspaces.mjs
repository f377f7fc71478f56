// The workspace manager of the fixture app: what real Next.js workspace
// managers do with opencode, written plainly so the e2e suite can check that
// `ocwrap -- next start` cleans up after it whatever happens to the server.
//
// Two ways to create a workspace, as found in the wild:
//   - "direct": child_process.spawn(`opencode serve --port=0 --print-logs`)
//     and parse the listening line, with no cleanup code at all;
//   - "ocwrap": spawn `ocwrap spawn --json <folder>` (foreground) and parse
//     its JSON; ocwrap then owns the opencode tree.
//
// The registry lives on globalThis because Next.js bundles every route
// separately: a module-level Map would be one map per route.

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const LISTENING = /opencode server listening on (\S+)/;
const READY_TIMEOUT_MS = 30_000;
const LOG_TAIL_BYTES = 64 * 1024;

function registry() {
  globalThis.__e2eWorkspaces ??= new Map();
  return globalThis.__e2eWorkspaces;
}

export function opencodeBin() {
  return process.env.OCWRAP_OPENCODE || "opencode";
}

export function ocwrapBin() {
  return process.env.E2E_OCWRAP || "ocwrap";
}

/** Keeps the last LOG_TAIL_BYTES of a stream and never lets its pipe fill. */
function tail(stream) {
  const log = { text: "" };
  log.closed = new Promise((resolve) => stream.once("close", resolve));
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    log.text = (log.text + chunk).slice(-LOG_TAIL_BYTES);
  });
  return log;
}

/**
 * Resolves with the first stdout line that `parse` accepts (returns a value
 * other than undefined); rejects if the child exits or the deadline passes.
 */
function firstLine(child, parse, what) {
  return new Promise((resolve, reject) => {
    let pending = "";
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(
      () => finish(reject, new Error(`${what}: not ready within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        const value = parse(line);
        if (value !== undefined) finish(resolve, value);
      }
    });
    child.on("error", (error) => finish(reject, error));
    child.on("exit", (code, signal) =>
      finish(reject, new Error(`${what} exited (code ${code}, signal ${signal}) before it was ready`)),
    );
  });
}

/** Adds the end of the child's stderr to a startup failure. */
async function withLog(promise, log) {
  try {
    return await promise;
  } catch (error) {
    // The child has exited or is late; give its last words up to a second
    // to arrive (the pipe closes when the last process holding it is gone).
    let timer;
    await Promise.race([log.closed, new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
    throw new Error(`${error.message}; its stderr ends with:\n${log.text.slice(-4000)}`);
  }
}

/**
 * The environment of a workspace's opencode. With `dataDir`, opencode keeps
 * its database there instead of in the shared $XDG_DATA_HOME/opencode:
 * opencode 1.18.33 fails with "database is locked" when several servers
 * initialise one fresh data dir at the same moment.
 */
function workspaceEnv(dataDir) {
  return dataDir ? { ...process.env, XDG_DATA_HOME: dataDir } : process.env;
}

async function startDirect(folder, dataDir) {
  const child = spawn(opencodeBin(), ["serve", "--port=0", "--print-logs"], {
    cwd: folder,
    env: workspaceEnv(dataDir),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = tail(child.stderr);
  const url = await withLog(firstLine(child, (line) => line.match(LISTENING)?.[1], "opencode serve"), log);
  return { child, log, url, opencodePid: child.pid, supervisorPid: null, ocwrapId: null };
}

async function startWithOcwrap(folder, dataDir) {
  const child = spawn(ocwrapBin(), ["spawn", "--json", folder], {
    cwd: folder,
    env: workspaceEnv(dataDir),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = tail(child.stderr);
  const info = await withLog(firstLine(
    child,
    (line) => {
      try {
        return JSON.parse(line);
      } catch {
        return undefined;
      }
    },
    "ocwrap spawn",
  ), log);
  return {
    child,
    log,
    url: info.url,
    opencodePid: info.pids.opencode,
    supervisorPid: info.pids.supervisor,
    ocwrapId: info.id,
  };
}

export async function createWorkspace({ folder, mode, dataDir }) {
  const absolute = (value) => typeof value === "string" && path.isAbsolute(value);
  if (!absolute(folder)) throw new Error("folder must be an absolute path");
  if (dataDir !== undefined && !absolute(dataDir)) throw new Error("dataDir must be an absolute path");
  const start = { direct: startDirect, ocwrap: startWithOcwrap }[mode];
  if (!start) throw new Error(`mode must be "direct" or "ocwrap", not ${JSON.stringify(mode)}`);
  const started = await start(folder, dataDir);
  const workspace = {
    id: randomUUID(),
    mode,
    folder,
    startedAt: new Date().toISOString(),
    ...started,
  };
  started.child.on("exit", () => {
    workspace.exited = true;
  });
  registry().set(workspace.id, workspace);
  return describe(workspace);
}

export function describe(workspace) {
  const { id, mode, folder, url, opencodePid, supervisorPid, ocwrapId, startedAt } = workspace;
  return { id, mode, folder, url, opencodePid, supervisorPid, ocwrapId, startedAt, exited: !!workspace.exited };
}

export function listWorkspaces() {
  return [...registry().values()].map(describe);
}

export function getWorkspace(id) {
  return registry().get(id);
}

/**
 * Opens a terminal in the workspace through opencode's HTTP API
 * (`POST /pty`, opencode 1.18.33) whose shell backgrounds a `setsid`
 * process, the way a user running a dev server "in the background" does.
 * Returns the PTY record and the PID of that setsid process.
 */
export async function openTerminal(workspace) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "e2e-pty-"));
  const pidFile = path.join(dir, "setsid.pid");
  try {
    const script = `setsid sleep 86400 </dev/null >/dev/null 2>&1 & echo $! > '${pidFile}'; exec sleep 86400`;
    const url = new URL("/pty", workspace.url);
    url.searchParams.set("directory", workspace.folder);
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "/bin/sh", args: ["-c", script], title: "e2e" }),
    });
    if (!response.ok) {
      throw new Error(`POST ${url}: ${response.status} ${await response.text()}`);
    }
    const pty = await response.json();
    const setsidPid = await readPid(pidFile, 10_000);
    return { pty, setsidPid };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function readPid(file, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, "utf8").catch(() => "");
    // The shell writes "PID\n"; wait for the newline so a half-written
    // number is never taken.
    if (text.endsWith("\n")) return Number(text.trim());
    if (Date.now() > deadline) throw new Error(`${file}: no PID within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
