// The real install path, end to end: the tarballs of target/npm/ installed
// with npm (from a registry on 127.0.0.1 that serves only them, so nothing
// comes from the network) into a fresh copy of the e2e suite's Next.js app
// (tests/e2e/app, real next and real opencode-ai from the e2e cache) plus
// routes that use the package's API (app-overlay/). Its `npm start` is
// `ocwrap --grace 3s --kill-timeout 3s -- next start`.
//
// Each scenario starts the app with `npm start`, creates a workspace through
// startWorkspace() (real `opencode serve`), opens a terminal in it whose shell
// backgrounds a `setsid` process, checks the health route, then ends the app
// one way and checks by PID (and by the sandbox's marker) that nothing is
// left.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { before, test } from "node:test";

import {
  EXIT_BOUND_MS,
  alive,
  assertDetachedAndMarked,
  assertNoneLeft,
  cleanUp,
  cmdline,
  freePort,
  identify,
  killChecked,
  marked,
  openTerminal,
  request,
  sandbox,
  start,
  stat,
  waitFor,
} from "../../../tests/e2e/harness.mjs";
import { startRegistry } from "./registry.mjs";

const HERE = path.dirname(new URL(import.meta.url).pathname);
const REPO = path.resolve(HERE, "../../..");
const DEPS = process.env.E2E_DEPS;
const TARBALLS = process.env.OCWRAP_NPM_DIR ?? path.join(REPO, "target/npm");
const NEXT = path.join(DEPS, "node_modules/.bin/next");
const PLATFORM = `linux-${process.arch}`;
// The teardown bound plus the time npm and sh take to notice.
const BOUND_MS = EXIT_BOUND_MS + 2000;

let APP;

function files(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(full));
    else out.push(full);
  }
  return out.sort();
}

function hashOf(paths) {
  const h = createHash("sha256");
  for (const p of paths) h.update(p).update(readFileSync(p));
  return h.digest("hex").slice(0, 16);
}

function run(cmd, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${out}`))));
  });
}

/**
 * Installs the tarballs into a fresh copy of the app and builds it, in
 * $E2E_DEPS/npm-app-<hash of tarballs and app sources> (inside the deps
 * folder, so that next and react resolve from its node_modules). Reused
 * while nothing changed; any failure fails the suite.
 */
before(async () => {
  assert.ok(DEPS && existsSync(NEXT), "E2E_DEPS must hold the e2e suite's dependencies: run bash npm/test.sh");
  const tarballs = readdirSync(TARBALLS).filter((n) => n.endsWith(".tgz")).map((n) => path.join(TARBALLS, n)).sort();
  const version = JSON.parse(execFileSync("tar", ["-xzOf", tarballs.find((t) => /\/ocwrap-\d/.test(t)), "package/package.json"], { encoding: "utf8" })).version;
  const e2eApp = path.join(REPO, "tests/e2e/app");
  const overlay = path.join(HERE, "app-overlay");
  const hash = hashOf([...tarballs, ...files(e2eApp), ...files(overlay)]);
  APP = path.join(DEPS, `npm-app-${hash}`);
  for (const old of readdirSync(DEPS).filter((n) => n.startsWith("npm-app-") && n !== path.basename(APP))) {
    rmSync(path.join(DEPS, old), { recursive: true, force: true });
  }
  if (existsSync(path.join(APP, ".built"))) return;
  rmSync(APP, { recursive: true, force: true });
  cpSync(e2eApp, APP, { recursive: true });
  cpSync(overlay, APP, { recursive: true });

  // npm install ocwrap@VERSION, from a registry that serves only our
  // tarballs; a private npm cache, so that nothing cached elsewhere is used.
  const main = JSON.parse(execFileSync("tar", ["-xzOf", path.join(TARBALLS, `ocwrap-${version}.tgz`), "package/package.json"], { encoding: "utf8" }));
  const declared = {};
  for (const [name, v] of Object.entries(main.optionalDependencies)) {
    declared[name] = { version: v, os: ["linux"], cpu: [name.split("-").pop()] };
  }
  const registry = await startRegistry(TARBALLS, { declared });
  const cache = mkdtempSync(path.join(os.tmpdir(), "ocwrap-npm-cache-"));
  try {
    await run("npm", ["install", "--no-audit", "--no-fund", "--registry", registry.url, "--cache", cache, `ocwrap@${version}`], {
      cwd: APP,
      env: { ...process.env, npm_config_registry: registry.url },
    });
  } finally {
    await registry.close();
    rmSync(cache, { recursive: true, force: true });
  }
  const installed = path.join(APP, "node_modules", "@ocwrap", PLATFORM, "bin", "ocwrap");
  assert.ok(statSync(installed).mode & 0o111, `npm installed the platform package's binary, executable: ${installed}`);
  for (const name of Object.keys(main.optionalDependencies).filter((n) => n !== `@ocwrap/${PLATFORM}`)) {
    assert.ok(!existsSync(path.join(APP, "node_modules", name)), `${name} (another platform) is not installed`);
    assert.ok(!registry.requests.some((r) => r.includes(name.replace("/", "-")) && r.includes("/tarballs/")), `${name}'s tarball was never fetched`);
  }
  assert.equal(readlinkSync(path.join(APP, "node_modules/.bin/ocwrap")), "../ocwrap/dist/launcher.js");
  assert.deepEqual(JSON.parse(readFileSync(path.join(APP, "package.json"), "utf8")).dependencies, { ocwrap: `^${version}` });

  await run(NEXT, ["build"], { cwd: APP, env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" } });
  writeFileSync(path.join(APP, ".built"), "");
});

/** Processes of the sandbox whose command line matches. */
function find(mark, pattern) {
  return marked(mark).filter((p) => pattern.test(p.cmdline));
}

/**
 * `npm start` in its own process group and session (as a terminal's job,
 * without the terminal), on a free port; resolves once the app answers.
 */
async function startApp(box) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const npm = start("npm", ["start", "--", "-H", "127.0.0.1", "-p", String(port)], { cwd: APP, env: box.env, detached: true });
  const server = await waitFor(`the app on ${base}`, async () => {
    if (npm.child.exitCode !== null) throw new Error(`npm start exited ${npm.child.exitCode}: ${npm.stderr}`);
    const res = await request("GET", `${base}/api/health`, undefined, 5000);
    return res.status === 200 && res.json;
  }, { timeoutMs: 60_000, intervalMs: 200 });
  const [launcher] = find(box.mark, /node \S*node_modules\/\.bin\/ocwrap --grace/);
  assert.ok(launcher, `the launcher (node_modules/.bin/ocwrap) runs:\n${marked(box.mark).map((p) => p.cmdline).join("\n")}`);
  const [binary] = find(box.mark, new RegExp(`^\\S*/@ocwrap/${PLATFORM}/bin/ocwrap --grace`));
  assert.ok(binary, "the platform package's binary runs");
  assert.equal(binary.ppid, launcher.pid, "Node 20: the launcher stays, as the binary's parent");
  assert.equal(stat(server.pid).ppid, binary.pid, "the Next.js server is the binary's CMD");
  assert.equal(readlinkSync(`/proc/${binary.pid}/exe`), realpathSync(path.join(APP, "node_modules/@ocwrap", PLATFORM, "bin/ocwrap")));
  return {
    npm,
    base,
    launcher: identify(launcher.pid),
    binary: identify(binary.pid),
    server: identify(server.pid),
  };
}

/** A workspace through POST /api/ocwrap/workspaces (startWorkspace), with a terminal and its setsid child. */
async function workspace(box, app) {
  const res = await request("POST", `${app.base}/api/ocwrap/workspaces`, { folder: box.folder("ws"), dataDir: box.folder("data") }, 90_000);
  assert.equal(res.status, 201, `POST /api/ocwrap/workspaces: ${res.status} ${res.text}`);
  const ws = res.json;
  assert.equal(stat(ws.pids.supervisor).ppid, app.server.pid, "the workspace's supervisor is a child of the Next.js server");
  assert.equal(readlinkSync(`/proc/${ws.pids.supervisor}/exe`), readlinkSync(`/proc/${app.binary.pid}/exe`),
    "the API inside the bundled route found the platform package's binary");
  const { setsid } = await openTerminal(ws.url, ws.folder);
  assertDetachedAndMarked(setsid, box.mark, "the terminal's setsid child");
  return { ws, procs: [identify(ws.pids.supervisor), identify(ws.pids.opencode), setsid] };
}

const HEALTH_KEYS = ["cleanupHandlersRegistered", "healthyProcesses", "lastCleanupTime", "orphanedProcesses", "runningWorkspaces", "totalWorkspaces"];

async function checkHealth(app, expected) {
  const res = await request("GET", `${app.base}/api/health/processes`, undefined, 30_000);
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(Object.keys(res.json).sort(), HEALTH_KEYS, "the documented shape");
  const { lastCleanupTime, ...rest } = res.json;
  assert.ok(lastCleanupTime === null || !Number.isNaN(Date.parse(lastCleanupTime)), `lastCleanupTime: ${lastCleanupTime}`);
  assert.deepEqual(rest, expected);
}

/** Waits for npm to exit and for every recorded process and marked process to be gone. */
async function assertAllGone(box, app, procs, what) {
  const t0 = performance.now();
  const exited = await Promise.race([app.npm.exited, new Promise((r) => setTimeout(() => r(null), BOUND_MS + 5000))]);
  assert.ok(exited, `npm start still running ${BOUND_MS + 5000} ms after ${what}; stderr:\n${app.npm.stderr}`);
  const all = [app.launcher, app.binary, app.server, ...procs];
  await waitFor(`every process to end after ${what}`, () => all.every((p) => !alive(p)), { timeoutMs: Math.max(1000, BOUND_MS - (performance.now() - t0)) })
    .catch((error) => {
      throw new Error(`${error.message}; alive: ${all.filter(alive).map((p) => `${p.pid} ${cmdline(p.pid)}`).join(", ")}\n${app.npm.stderr}`);
    });
  assertNoneLeft(box.mark, `after ${what}`);
  assert.doesNotMatch(app.npm.stderr, /during the grace: sending SIGKILL now/, "one stop signal reached ocwrap, not two");
}

async function scenario(name, body) {
  test(name, { timeout: 180_000 }, async (t) => {
    const box = sandbox("npm-app");
    try {
      const app = await body(box);
      // ocwrap's own lines (the supervisor's and the workspaces'), for the record.
      for (const line of app.npm.stderr.split("\n").filter((l) => l.startsWith("ocwrap:"))) t.diagnostic(line);
    } finally {
      await cleanUp(box);
    }
  });
}

scenario("SIGTERM to the app's `ocwrap` (npm start's command) ends everything; the health route's shape", async (box) => {
  const app = await startApp(box);
  await checkHealth(app, { totalWorkspaces: 0, runningWorkspaces: 0, healthyProcesses: 0, orphanedProcesses: 0, cleanupHandlersRegistered: true });
  const { procs } = await workspace(box, app);
  await checkHealth(app, { totalWorkspaces: 1, runningWorkspaces: 1, healthyProcesses: 1, orphanedProcesses: 0, cleanupHandlersRegistered: true });
  killChecked(app.launcher, "SIGTERM");
  await assertAllGone(box, app, procs, "SIGTERM to the launcher");
  assert.match(app.npm.stderr, /ocwrap: received SIGTERM/);
  return app;
});

scenario("SIGINT to npm start's process group (Ctrl-C) ends everything, with one SIGINT", async (box) => {
  const app = await startApp(box);
  const { procs } = await workspace(box, app);
  process.kill(-app.npm.pid, "SIGINT");
  await assertAllGone(box, app, procs, "SIGINT to the process group");
  // INT is forwarded, not a stop request: Next.js exits on it, and the
  // supervisor's teardown follows CMD's exit (one teardown, no escalation).
  assert.equal((app.npm.stderr.match(/^ocwrap: teardown \(CMD (exited|was killed)/gm) ?? []).length, 1, app.npm.stderr);
  return app;
});

scenario("SIGKILL of the Next.js server ends everything", async (box) => {
  const app = await startApp(box);
  const { procs } = await workspace(box, app);
  killChecked(app.server, "SIGKILL");
  await assertAllGone(box, app, procs, "SIGKILL of the Next.js server");
  return app;
});

scenario("[binary: OCWRAP_LAUNCHER_PID] SIGKILL of the app's `ocwrap` launcher ends everything", async (box) => {
  const app = await startApp(box);
  const { procs } = await workspace(box, app);
  killChecked(app.launcher, "SIGKILL");
  await assertAllGone(box, app, procs, "SIGKILL of the launcher");
  return app;
});

scenario("[binary: stop --json] the stopWorkspace route stops a workspace, verified, while the app runs", async (box) => {
  const app = await startApp(box);
  const { ws, procs } = await workspace(box, app);
  const res = await request("DELETE", `${app.base}/api/ocwrap/workspaces/${ws.id}`, undefined, 30_000);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.clean, true);
  assert.deepEqual(res.json.workspaces.map((w) => w.id), [ws.id]);
  assert.ok(procs.every((p) => !alive(p)), "the workspace's tree is gone when the route answers");
  assert.ok(alive(app.server), "the app still runs");
  await checkHealth(app, { totalWorkspaces: 0, runningWorkspaces: 0, healthyProcesses: 0, orphanedProcesses: 0, cleanupHandlersRegistered: true });
  killChecked(app.launcher, "SIGTERM");
  await assertAllGone(box, app, [], "SIGTERM after the stop");
  return app;
});
