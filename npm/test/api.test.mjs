// The JS API against the real ocwrap binary and the fake opencode
// (tests/fixtures/fake-opencode). Each test checks by PID that nothing it
// started is left. Tests that need a binary feature of the contracts that
// may not have landed yet say so in their name ("[binary: ...]").

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { realpathSync, writeFileSync, chmodSync } from "node:fs";
import path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";

import {
  alive,
  api,
  assertGone,
  assertNoneLeft,
  BINARY,
  BOUND_MS,
  cleanUp,
  environ,
  fakePids,
  GRACE_MS,
  identify,
  KILL_TIMEOUT_MS,
  killChecked,
  PACKAGE_DIR,
  rejectsWith,
  sandbox,
  start,
  stat,
  waitFor,
  waitGone,
  within,
} from "./helpers.mjs";

const {
  startWorkspace,
  listWorkspaces,
  stopWorkspace,
  stopAllWorkspaces,
  reap,
  stats,
  healthStatus,
  healthRoute,
  OcwrapError,
} = api;

let box;
before(() => {
  box = sandbox("api");
});
after(() => cleanUp(box));

// Every workspace a test started; whatever a failed test left is ended here,
// by PID, so that the next test starts from an empty registry.
const live = new Set();
afterEach(async () => {
  for (const w of live) {
    if (alive(w.procs[0])) await terminate(w).catch(() => {});
    for (const p of w.procs) killChecked(p, "SIGKILL");
    live.delete(w);
  }
  await waitFor("the registry to be empty after the test", async () => (await listWorkspaces()).length === 0, { timeoutMs: 5000 })
    .catch(async () => {
      await reap({ match: `${box.mark}/opencode serve` }).catch(() => {});
    });
});

const timing = { grace: GRACE_MS, killTimeout: KILL_TIMEOUT_MS };

/** Starts a workspace on the fake opencode; returns it with the fake's PIDs. */
async function started(options = {}) {
  const folder = box.folder();
  const pidsFile = box.pidsFile();
  const ws = await startWorkspace(folder, {
    ...timing,
    output: "ignore",
    ...options,
    env: { FAKE_OPENCODE_PIDS: pidsFile, ...options.env },
  });
  const fake = await fakePids(pidsFile);
  const procs = [identify(ws.pids.supervisor), ...fake.all()];
  const w = { ws, folder, fake, procs };
  live.add(w);
  return w;
}

/**
 * Ends a workspace without `stop` (SIGTERM to its supervisor, whose own
 * teardown ends the tree), for tests about something else.
 */
async function terminate({ ws, procs }) {
  killChecked(procs[0], "SIGTERM");
  await within(BOUND_MS, ws.exited, `workspace ${ws.id}'s supervisor exiting after SIGTERM`);
  await waitGone(procs, `workspace ${ws.id}'s processes to end`);
}

async function health(url) {
  const res = await fetch(new URL("/global/health", url));
  return { status: res.status, body: await res.json() };
}

describe("startWorkspace", () => {
  test("resolves once opencode listens, with the workspace's id, folder, url, port, pids, startedAt and log", async () => {
    const t0 = Date.now();
    const w = await started();
    const { ws, folder, fake } = w;
    try {
      assert.match(ws.id, /^[0-9a-f]+$/);
      assert.equal(ws.folder, realpathSync(folder));
      assert.match(ws.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(ws.port, Number(new URL(ws.url).port));
      assert.equal(ws.pids.opencode, fake.info.opencode);
      assert.equal(ws.log, null, "a foreground workspace has no log file");
      assert.ok(ws.startedAt instanceof Date && !Number.isNaN(ws.startedAt.getTime()), "startedAt is a valid Date");
      assert.ok(Math.abs(ws.startedAt.getTime() - t0) < 5000, `startedAt ${ws.startedAt.toISOString()} is now`);
      assert.deepEqual(await health(ws.url), { status: 200, body: { healthy: true, version: "fake" } });
      // The supervisor is our child, in the foreground: it dies with us.
      assert.equal(stat(ws.pids.supervisor).ppid, process.pid);
      assert.equal(stat(ws.pids.opencode).ppid, ws.pids.supervisor);
      assert.equal(fake.info.cwd, ws.folder, "opencode runs in the folder");
      assert.ok(environ(ws.pids.opencode).includes(`OCWRAP_WORKSPACE=${ws.id}`));
      assert.deepEqual(JSON.parse(JSON.stringify(ws)), {
        id: ws.id,
        folder: ws.folder,
        url: ws.url,
        port: ws.port,
        pids: { supervisor: ws.pids.supervisor, opencode: ws.pids.opencode },
        startedAt: ws.startedAt.toISOString(),
        log: null,
      });
    } finally {
      await terminate(w);
    }
    assertGone(w.procs, "after the supervisor's teardown");
  });

  test("passes options through: port, hostname, env (set and unset), opencodeArgs, output", async () => {
    process.env.NPMTEST_UNSET_ME = "1";
    const seen = [];
    const folder = box.folder();
    const pidsFile = box.pidsFile();
    const ws = await startWorkspace(folder, {
      ...timing,
      hostname: "127.0.0.1",
      env: { FAKE_OPENCODE_PIDS: pidsFile, NPMTEST_EXTRA: "yes", NPMTEST_UNSET_ME: undefined },
      opencodeArgs: ["--extra-flag", "x y"],
      output: (line) => seen.push(line),
    });
    delete process.env.NPMTEST_UNSET_ME;
    const fake = await fakePids(pidsFile);
    const w = { ws, procs: [identify(ws.pids.supervisor), ...fake.all()] };
    live.add(w);
    try {
      assert.deepEqual(fake.info.args, ["serve", "--port=0", "--print-logs", "--hostname=127.0.0.1", "--extra-flag", "x y"]);
      const env = environ(ws.pids.opencode);
      assert.ok(env.includes("NPMTEST_EXTRA=yes"), "env reaches opencode");
      assert.ok(!env.some((e) => e.startsWith("NPMTEST_UNSET_ME=")), "a variable set to undefined is removed");
      await waitFor("opencode's output to reach the output callback", () =>
        seen.some((l) => l.includes("opencode server listening on")),
      );
    } finally {
      await terminate(w);
    }
    assert.ok(seen.some((l) => /^ocwrap: teardown/.test(l)), `the supervisor's own log lines come too:\n${seen.join("\n")}`);
  });

  test("a fixed port is passed to opencode", async () => {
    const net = await import("node:net");
    const port = await new Promise((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const w = await started({ port });
    try {
      assert.equal(w.ws.port, port);
      assert.deepEqual(w.fake.info.args.slice(0, 2), ["serve", `--port=${port}`]);
    } finally {
      await terminate(w);
    }
  });

  test("exited resolves with the supervisor's status when opencode dies", async () => {
    const w = await started();
    killChecked(w.fake.opencode, "SIGKILL");
    const info = await within(BOUND_MS, w.ws.exited, "exited after opencode was killed");
    assert.equal(info.code, 137, "opencode's death by SIGKILL, as 128+9");
    assert.equal(info.signal, null);
    await waitGone(w.procs, "the workspace's children (setsid one too)");
  });

  test("[binary: spawn's second JSON line] exited carries the teardown report", async () => {
    const w = await started();
    killChecked(w.procs[0], "SIGTERM");
    const info = await within(BOUND_MS, w.ws.exited, "exited after SIGTERM");
    await waitGone(w.procs, "the workspace's processes");
    assert.ok(info.teardown, "the supervisor printed its stopped line");
    assert.equal(info.teardown.id, w.ws.id);
    assert.equal(info.teardown.clean, true);
    assert.equal(typeof info.teardown.trigger, "string");
    assert.ok(info.teardown.durationMs >= 0 && info.teardown.durationMs < BOUND_MS);
    assert.deepEqual(info.teardown.survivors, []);
    assert.equal(info.teardown.exitCode, info.code);
    assert.ok(info.teardown.endedOnStopSignal + info.teardown.killed >= 2, "opencode's two children ended");
  });
});

describe("startWorkspace errors: rejected with an OcwrapError, nothing left running", () => {
  test("a missing folder", async () => {
    const missing = path.join(box.dir, "no-such-folder");
    const error = await rejectsWith(startWorkspace(missing, { output: "ignore" }), {
      code: "OCWRAP_BAD_FOLDER",
      exitCode: 125,
      message: /no-such-folder/,
    });
    assert.ok(!error.message.includes("\n"), "one line");
    assert.ok(!error.message.startsWith("ocwrap:"), "the message without the log prefix");
    assertNoneLeft(box.mark, "after a missing folder");
  });

  test("a folder that is a file", async () => {
    const file = path.join(box.dir, "a-file");
    writeFileSync(file, "");
    await rejectsWith(startWorkspace(file, { output: "ignore" }), {
      code: "OCWRAP_BAD_FOLDER",
      exitCode: 125,
      message: /^cannot use folder .*a-file: not a directory$/,
    });
  });

  test("opencode not found: exitCode 127", async () => {
    const folder = box.folder();
    const error = await rejectsWith(
      startWorkspace(folder, { opencode: path.join(box.dir, "no-such-opencode"), output: "ignore" }),
      { code: "OCWRAP_OPENCODE_NOT_FOUND", exitCode: 127 },
    );
    assert.match(error.message, /no-such-opencode|not found/);
    // Also when it is looked up on PATH.
    await rejectsWith(
      startWorkspace(folder, { env: { OCWRAP_OPENCODE: undefined, PATH: box.dir }, output: "ignore" }),
      { code: "OCWRAP_OPENCODE_NOT_FOUND", exitCode: 127, message: /opencode not found/ },
    );
    assertNoneLeft(box.mark, "after opencode was not found");
  });

  test("not ready in time: rejected after the tree is torn down", async () => {
    const folder = box.folder();
    const pidsFile = box.pidsFile();
    const pending = startWorkspace(folder, {
      ...timing,
      readyTimeout: "700ms",
      env: { FAKE_OPENCODE_MODE: "never", FAKE_OPENCODE_PIDS: pidsFile },
      output: "ignore",
    });
    pending.catch(() => {}); // awaited below, after the PID file
    const fake = await fakePids(pidsFile);
    const error = await rejectsWith(pending, { code: "OCWRAP_NOT_READY", exitCode: 125, message: /never got ready/ });
    assert.ok(!error.message.includes("\n"));
    assertGone(fake.all(), "when startWorkspace rejected (not ready)");
    assertNoneLeft(box.mark, "after a workspace that never got ready");
  });

  test("opencode exits before it is ready", async () => {
    const pidsFile = box.pidsFile();
    const pending = startWorkspace(box.folder(), {
      ...timing,
      env: { FAKE_OPENCODE_MODE: "crash", FAKE_OPENCODE_PIDS: pidsFile },
      output: "ignore",
    });
    pending.catch(() => {}); // awaited below, after the PID file
    const fake = await fakePids(pidsFile);
    const error = await rejectsWith(pending, { code: "OCWRAP_NOT_READY", exitCode: 125 });
    assert.match(error.message, /something broke/, "the message quotes opencode's last output");
    assertGone(fake.all(), "when startWorkspace rejected (crash)");
  });

  test("a malformed duration string is the binary's error; a bad number is a TypeError", async () => {
    await rejectsWith(startWorkspace(box.folder(), { grace: "ten", output: "ignore" }), {
      code: "OCWRAP_FAILED",
      exitCode: 125,
      message: /ten/,
    });
    await assert.rejects(startWorkspace(box.folder(), { grace: -1 }), TypeError);
    await assert.rejects(startWorkspace(box.folder(), { port: 70000 }), TypeError);
    await assert.rejects(startWorkspace(""), TypeError);
    assertNoneLeft(box.mark, "after bad options");
  });

  test("durations: a number is milliseconds, a string the binary's syntax", async () => {
    // readyTimeout 300 (ms) against a fake that needs 3 s: not ready.
    const t0 = performance.now();
    await rejectsWith(
      startWorkspace(box.folder(), { readyTimeout: 300, env: { FAKE_OPENCODE_MODE: "slow", FAKE_OPENCODE_DELAY: "3" }, ...timing, output: "ignore" }),
      { code: "OCWRAP_NOT_READY", message: /300ms/ },
    );
    assert.ok(performance.now() - t0 < 2900, "gave up after about 300 ms, not 300 s");
    // "1s" against a fake that needs 0.2 s: ready.
    const w = await started({ readyTimeout: "1s", env: { FAKE_OPENCODE_MODE: "slow", FAKE_OPENCODE_DELAY: "0.2" } });
    await terminate(w);
  });

  test("no binary: OCWRAP_BINARY naming a missing file", async () => {
    const saved = process.env.OCWRAP_BINARY;
    process.env.OCWRAP_BINARY = path.join(box.dir, "no-such-binary");
    try {
      await rejectsWith(startWorkspace(box.folder()), { code: "OCWRAP_NO_BINARY", message: /no-such-binary/ });
      await rejectsWith(listWorkspaces(), { code: "OCWRAP_NO_BINARY" });
    } finally {
      process.env.OCWRAP_BINARY = saved;
    }
  });
});

describe("the AbortSignal", () => {
  test("already aborted: rejects with its reason, starts nothing", async () => {
    const controller = new AbortController();
    controller.abort(new Error("not wanted"));
    await assert.rejects(startWorkspace(box.folder(), { signal: controller.signal }), /not wanted/);
    assertNoneLeft(box.mark, "after an aborted start");
  });

  test("aborted while starting: the tree is torn down, then it rejects with the reason", async () => {
    const controller = new AbortController();
    const pidsFile = box.pidsFile();
    const pending = startWorkspace(box.folder(), {
      ...timing,
      signal: controller.signal,
      env: { FAKE_OPENCODE_MODE: "never", FAKE_OPENCODE_PIDS: pidsFile },
      output: "ignore",
    });
    pending.catch(() => {}); // awaited below, after the PID file
    const fake = await fakePids(pidsFile);
    const supervisor = identify(stat(fake.info.opencode).ppid);
    controller.abort();
    const t0 = performance.now();
    await assert.rejects(
      within(BOUND_MS, pending, "startWorkspace settling after abort"),
      (e) => e.name === "AbortError",
    );
    assert.ok(performance.now() - t0 < BOUND_MS);
    assertGone([supervisor, ...fake.all()], "when the aborted start rejected");
  });

  test("aborted after it is ready: ignored, the workspace keeps running", async () => {
    const controller = new AbortController();
    const w = await started({ signal: controller.signal });
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 300));
    try {
      assert.ok(w.procs.every(alive), "the workspace still runs");
      assert.equal((await health(w.ws.url)).status, 200);
    } finally {
      await terminate(w);
    }
  });
});

describe("listWorkspaces", () => {
  test("lists every workspace with its state, pids and size; check adds health", async () => {
    const a = await started();
    const b = await started();
    try {
      const list = await listWorkspaces();
      const ids = list.map((w) => w.id).sort();
      assert.deepEqual(ids, [a.ws.id, b.ws.id].sort());
      for (const { ws } of [a, b]) {
        const row = list.find((w) => w.id === ws.id);
        assert.equal(row.folder, ws.folder);
        assert.equal(row.url, ws.url);
        assert.equal(row.port, ws.port);
        assert.deepEqual(row.pids, { supervisor: ws.pids.supervisor, opencode: ws.pids.opencode });
        assert.equal(row.state, "running");
        assert.equal(row.health, null);
        assert.equal(row.log, null);
        assert.ok(row.processes >= 4, `supervisor, opencode and two children: ${row.processes}`);
        assert.ok(row.rssBytes > 0);
        assert.ok(Number.isInteger(row.uptimeSeconds) && row.uptimeSeconds >= 0);
      }
      const checked = await listWorkspaces({ check: true });
      assert.deepEqual(checked.map((w) => w.health), ["healthy", "healthy"]);
    } finally {
      await terminate(a);
      await terminate(b);
    }
    assert.deepEqual(await listWorkspaces(), [], "a clean teardown removes the record");
  });

  test("[binary: started_at in ps --json] startedAt is the workspace's start", async () => {
    const w = await started();
    try {
      const [row] = (await listWorkspaces()).filter((r) => r.id === w.ws.id);
      assert.ok(!Number.isNaN(row.startedAt.getTime()), "ps --json has started_at");
      assert.equal(row.startedAt.getTime(), w.ws.startedAt.getTime());
    } finally {
      await terminate(w);
    }
  });

  test("an empty state dir lists nothing", async () => {
    assert.deepEqual(await listWorkspaces({ stateDir: path.join(box.dir, "empty-state") }), []);
  });
});

describe("stopping [binary: stop --json]", () => {
  test("workspace.stop() resolves once the whole tree is gone, and exited has resolved", async () => {
    const w = await started();
    const t0 = performance.now();
    const result = await within(BOUND_MS, w.ws.stop(), "stop()");
    assert.ok(performance.now() - t0 < BOUND_MS);
    assertGone(w.procs, "when stop() resolved");
    assert.equal(result.id, w.ws.id);
    assert.equal(result.folder, w.ws.folder);
    assert.equal(result.clean, true);
    assert.deepEqual(result.survivors, []);
    assert.ok(result.processes >= 4);
    assert.ok(result.durationMs >= 0);
    const info = await within(100, w.ws.exited, "exited, already resolved");
    assert.ok(info.code !== null);
    assert.equal(w.ws.stop(), w.ws.stop(), "stop() twice is one stop");
    assert.deepEqual(await listWorkspaces(), []);
  });

  test("stop() after the workspace already ended resolves clean", async () => {
    const w = await started();
    killChecked(w.fake.opencode, "SIGKILL");
    await within(BOUND_MS, w.ws.exited, "exited");
    const result = await w.ws.stop();
    assert.equal(result.clean, true);
    assertGone(w.procs, "after stop() of an ended workspace");
  });

  test("stopWorkspace(id) and stopWorkspace(folder)", async () => {
    const a = await started();
    const b = await started();
    const byId = await within(BOUND_MS, stopWorkspace(a.ws.id), "stopWorkspace(id)");
    assertGone(a.procs, "after stopWorkspace(id)");
    assert.equal(byId.clean, true);
    assert.deepEqual(byId.workspaces.map((w) => w.id), [a.ws.id]);
    assert.ok(b.procs.every(alive), "the other workspace is untouched");
    const byFolder = await within(BOUND_MS, stopWorkspace(b.folder), "stopWorkspace(folder)");
    assertGone(b.procs, "after stopWorkspace(folder)");
    assert.deepEqual(byFolder.workspaces.map((w) => w.id), [b.ws.id]);
    await within(1000, Promise.all([a.ws.exited, b.ws.exited]), "both supervisors reaped");
  });

  test("stopWorkspace of nothing: OCWRAP_NO_MATCH, exitCode 125", async () => {
    await rejectsWith(stopWorkspace("nosuchid"), {
      code: "OCWRAP_NO_MATCH",
      exitCode: 125,
      message: /no workspace matches '?nosuchid/,
    });
  });

  test("stopAllWorkspaces() stops every workspace", async () => {
    const ws = [await started(), await started(), await started()];
    const summary = await within(BOUND_MS * 2, stopAllWorkspaces(), "stopAllWorkspaces()");
    assertGone(ws.flatMap((w) => w.procs), "after stopAllWorkspaces()");
    assert.equal(summary.clean, true);
    assert.deepEqual(summary.workspaces.map((w) => w.id).sort(), ws.map((w) => w.ws.id).sort());
    assert.deepEqual(await stopAllWorkspaces(), { clean: true, workspaces: [] }, "nothing left to stop");
  });
});

describe("the stop and reap contracts, through a scripted binary", () => {
  // A stand-in binary that prints what the contracts say the binary prints
  // when processes survive (a real unkillable process cannot be made here).
  function scripted(name, body) {
    const file = path.join(box.dir, name);
    writeFileSync(file, `#!/bin/sh\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }
  async function withBinary(file, fn) {
    const saved = process.env.OCWRAP_BINARY;
    process.env.OCWRAP_BINARY = file;
    try {
      return await fn();
    } finally {
      process.env.OCWRAP_BINARY = saved;
    }
  }

  test("stopWorkspace rejects with the survivors and the summary", async () => {
    const json = JSON.stringify({
      clean: false,
      workspaces: [{ id: "abcd1234", folder: "/w", clean: false, duration_ms: 5000, processes: 3, ended_on_stop_signal: 1, killed: 1, survivors: [{ pid: 4242, command: "stuck" }] }],
    });
    const bin = scripted("stop-survivors", `echo '${json}'\necho 'ocwrap: error: workspace abcd1234: survivors: 4242' >&2\nexit 125`);
    const error = await withBinary(bin, () =>
      rejectsWith(stopWorkspace("abcd1234"), { code: "OCWRAP_SURVIVORS", exitCode: 125, survivors: [{ pid: 4242, command: "stuck" }] }),
    );
    assert.equal(error.result.clean, false);
    assert.equal(error.result.workspaces[0].durationMs, 5000);
    assert.match(error.message, /survivors: 4242/);
  });

  test("reap rejects with the survivors", async () => {
    const json = JSON.stringify({ dry_run: false, targets: [], survivors: [{ pid: 77, command: "x" }], ended_on_stop_signal: 0, killed: 0 });
    const bin = scripted("reap-survivors", `echo '${json}'\necho 'ocwrap: error: survivors: 77' >&2\nexit 125`);
    await withBinary(bin, () => rejectsWith(reap({ match: "x" }), { code: "OCWRAP_SURVIVORS", exitCode: 125, survivors: [{ pid: 77, command: "x" }] }));
  });

  test("healthRoute answers 500 with the error when ocwrap fails", async () => {
    const bin = scripted("ps-fails", "echo 'ocwrap: error: state directory /x is writable by others' >&2\nexit 125");
    const res = await withBinary(bin, () => healthRoute()(new Request("http://127.0.0.1/api/health/processes")));
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: "state directory /x is writable by others", code: "OCWRAP_FAILED", exitCode: 125 });
  });
});

describe("reap", () => {
  test("ends an orphaned workspace (supervisor SIGKILLed) and an untracked orphan; dry run first", async () => {
    // An orphaned workspace: its supervisor is SIGKILLed; opencode gets the
    // supervisor's parent-death SIGKILL, the setsid child lives on.
    const w = await started();
    killChecked(w.procs[0], "SIGKILL");
    await within(BOUND_MS, w.ws.exited, "the killed supervisor reaped");
    await waitGone([w.fake.opencode], "opencode to die with its supervisor");
    const setsidChild = w.fake.children[1];
    assert.ok(alive(setsidChild), "the setsid child outlived the supervisor");
    // An untracked orphan: a server started outside ocwrap whose parent exited.
    const pidsFile = box.pidsFile();
    const folder = box.folder();
    const starter = start("sh", ["-c", `cd '${folder}' && '${box.opencode}' serve --port=0 >/dev/null 2>&1 &`], {
      env: { ...process.env, FAKE_OPENCODE_PIDS: pidsFile },
    });
    await starter.exited;
    const orphan = await fakePids(pidsFile);
    assert.equal(stat(orphan.info.opencode).ppid, 1, "the untracked server is an orphan (parent 1): run the tests outside a subreaper");

    const health = await healthStatus({ check: false });
    assert.ok(health.orphanedProcesses >= 1, `healthStatus counts the orphaned workspace's processes: ${JSON.stringify(health)}`);
    const [row] = (await listWorkspaces()).filter((r) => r.id === w.ws.id);
    assert.equal(row.state, "orphaned");

    const dry = await reap({ dryRun: true, match: `${box.mark}/opencode serve` });
    assert.equal(dry.dryRun, true);
    assert.equal(dry.endedOnStopSignal, null);
    assert.equal(dry.killed, null);
    const byWorkspace = dry.targets.find((t) => t.workspace === w.ws.id);
    assert.ok(byWorkspace, `the orphaned workspace is a target: ${JSON.stringify(dry.targets)}`);
    assert.ok(byWorkspace.processes.includes(setsidChild.pid));
    const untracked = dry.targets.find((t) => t.pid === orphan.info.opencode);
    assert.ok(untracked, "the untracked orphan is a target");
    assert.equal(untracked.workspace, null);
    assert.match(untracked.reason, /orphaned/);
    assert.ok(alive(setsidChild) && alive(orphan.opencode), "a dry run ends nothing");

    const done = await within(BOUND_MS * 2, reap({ match: `${box.mark}/opencode serve`, grace: 1000, killTimeout: 2000 }), "reap()");
    assert.equal(done.dryRun, false);
    assert.deepEqual(done.survivors, []);
    assert.ok(done.endedOnStopSignal + done.killed >= 4, "two of the workspace, the orphan and its two children");
    assertGone([setsidChild, ...orphan.all()], "after reap()");
    assert.deepEqual(await listWorkspaces(), [], "the reaped workspace's record is gone");
    const metrics = await stats();
    assert.ok(metrics.orphanedProcesses >= 1, "stats counts the orphans reap found");
  });

  test("nothing to reap", async () => {
    const result = await reap({ match: `${box.mark}/nothing-runs-this` });
    assert.deepEqual(result.targets, []);
    assert.deepEqual(result.survivors, []);
  });
});

describe("stats and health", () => {
  test("stats() maps ocwrap's counters to CleanupMetrics", async () => {
    const dir = path.join(box.dir, "stats-state");
    const before = await stats({ stateDir: dir });
    assert.deepEqual(
      { ...before, lastCleanupTime: null },
      {
        totalShutdowns: 0, successfulCleanups: 0, failedCleanups: 0, averageCleanupTime: 0, timeoutOccurrences: 0,
        retryAttempts: 0, orphanedProcesses: 0, maxCleanupTime: 0, totalCleanupTime: 0, processesEnded: 0,
        processesKilled: 0, lastCleanupTime: null,
      },
    );
    const w = await started({ stateDir: dir });
    await terminate(w);
    const metrics = await stats({ stateDir: dir });
    assert.equal(metrics.totalShutdowns, 1);
    assert.equal(metrics.successfulCleanups, 1);
    assert.equal(metrics.failedCleanups, 0);
    assert.equal(metrics.averageCleanupTime, metrics.totalCleanupTime);
    assert.ok(metrics.maxCleanupTime >= metrics.averageCleanupTime);
    assert.ok(metrics.processesEnded + metrics.processesKilled >= 2, "opencode's two children ended in the teardown");
    for (const key of ["timeoutOccurrences", "retryAttempts", "orphanedProcesses"]) {
      assert.ok(Number.isInteger(metrics[key]) && metrics[key] >= 0, key);
    }
  });

  test("[binary: last_teardown_at in stats --json] lastCleanupTime is the last teardown's end", async () => {
    const dir = path.join(box.dir, "stats-last");
    const w = await started({ stateDir: dir });
    const t0 = Date.now();
    await terminate(w);
    const metrics = await stats({ stateDir: dir });
    assert.ok(metrics.lastCleanupTime instanceof Date, `lastCleanupTime: ${metrics.lastCleanupTime}`);
    assert.ok(Math.abs(metrics.lastCleanupTime.getTime() - t0) < 5000);
    const status = await healthStatus({ stateDir: dir });
    assert.equal(status.lastCleanupTime, metrics.lastCleanupTime.toISOString());
  });

  test("healthStatus() has the seed's shape and counts running and healthy workspaces", async () => {
    const dir = path.join(box.dir, "health-state");
    const empty = await healthStatus({ stateDir: dir });
    assert.deepEqual(Object.keys(empty).sort(), [
      "cleanupHandlersRegistered", "healthyProcesses", "lastCleanupTime", "orphanedProcesses", "runningWorkspaces", "totalWorkspaces",
    ]);
    assert.equal(empty.totalWorkspaces, 0);
    const a = await started({ stateDir: dir });
    const b = await started({ stateDir: dir });
    try {
      const status = await healthStatus({ stateDir: dir });
      assert.equal(status.totalWorkspaces, 2);
      assert.equal(status.runningWorkspaces, 2);
      assert.equal(status.healthyProcesses, 2);
      assert.equal(status.orphanedProcesses, 0);
      assert.equal(typeof status.cleanupHandlersRegistered, "boolean");
      // A server that stops answering is running but not healthy.
      killChecked(b.fake.opencode, "SIGSTOP");
      const stalled = await healthStatus({ stateDir: dir });
      assert.equal(stalled.runningWorkspaces, 2);
      assert.equal(stalled.healthyProcesses, 1);
      killChecked(b.fake.opencode, "SIGCONT");
      // The route answers the same shape.
      const res = await healthRoute({ stateDir: dir })(new Request("http://127.0.0.1/api/health/processes"));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.equal(res.headers.get("cache-control"), "no-store");
      const body = await res.json();
      assert.deepEqual({ ...body, lastCleanupTime: null }, { ...status, lastCleanupTime: null });
    } finally {
      await terminate(a);
      await terminate(b);
    }
  });

  test("cleanupHandlersRegistered: true under an ocwrap supervisor, false outside one", async () => {
    const script = `const { healthStatus } = await import(${JSON.stringify(path.join(PACKAGE_DIR, "dist/index.js"))});
      console.log(JSON.stringify(await healthStatus({ check: false })));`;
    const run = async (cmd, args) => {
      const p = start(cmd, args);
      const line = await p.line("the health status", (l) => l.startsWith("{"));
      await p.exited;
      return JSON.parse(line);
    };
    const under = await run(BINARY, ["--", process.execPath, "--input-type=module", "-e", script]);
    assert.equal(under.cleanupHandlersRegistered, true);
    // Outside: only if this test itself does not run under ocwrap.
    const mine = await run(process.execPath, ["--input-type=module", "-e", script]);
    let pid = process.pid;
    let ours = false;
    while (pid > 1) {
      const s = stat(pid);
      if (!s) break;
      if (s.comm === "ocwrap") ours = true;
      pid = s.ppid;
    }
    assert.equal(mine.cleanupHandlersRegistered, ours);
  });
});

describe("the app dies", () => {
  test("SIGKILL of an app (a node process using the API) while a workspace runs leaves nothing", async () => {
    const pidsFile = box.pidsFile();
    const folder = box.folder();
    const script = `
      const { startWorkspace } = await import(${JSON.stringify(path.join(PACKAGE_DIR, "dist/index.js"))});
      const ws = await startWorkspace(${JSON.stringify(folder)}, { grace: ${GRACE_MS}, killTimeout: ${KILL_TIMEOUT_MS}, output: "ignore" });
      console.log(JSON.stringify(ws));
      setInterval(() => {}, 1000);`;
    const app = start(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, FAKE_OPENCODE_PIDS: pidsFile },
    });
    const ws = JSON.parse(await app.line("the app's workspace", (l) => l.startsWith("{")));
    const fake = await fakePids(pidsFile);
    const procs = [identify(ws.pids.supervisor), ...fake.all()];
    assert.equal(stat(ws.pids.supervisor).ppid, app.pid);
    killChecked(identify(app.pid), "SIGKILL");
    const t0 = performance.now();
    await app.exited;
    await waitGone(procs, "the workspace to end after its app was SIGKILLed");
    assert.ok(performance.now() - t0 < BOUND_MS);
    assertNoneLeft(box.mark, "after the app was SIGKILLed");
    assert.deepEqual(await listWorkspaces(), [], "the supervisor's clean teardown removed the record");
  });
});

test("OcwrapError is one exported class with code, exitCode, signal, survivors and stderr", () => {
  const e = new OcwrapError("x", { code: "OCWRAP_FAILED", exitCode: 125 });
  assert.ok(e instanceof Error);
  assert.equal(e.name, "OcwrapError");
  assert.deepEqual([e.code, e.exitCode, e.signal, e.survivors, e.stderr], ["OCWRAP_FAILED", 125, null, [], ""]);
  assert.equal(typeof api.findBinary().path, "string");
  assert.equal(api.findBinary().source, "OCWRAP_BINARY");
  assert.equal(api.platformPackage("linux", "x64"), "@ocwrap/linux-x64");
  assert.equal(api.platformPackage("linux", "arm64"), "@ocwrap/linux-arm64");
  assert.equal(api.platformPackage("darwin", "arm64"), null);
});
