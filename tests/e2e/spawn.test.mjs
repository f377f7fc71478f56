// Scenario 1: `ocwrap spawn` with the real opencode serve. The workspace
// answers GET /global/health; a terminal opened through opencode's API
// backgrounds a setsid process (which, on opencode 1.18.33, outlives both
// SIGTERM and SIGKILL of opencode serve); `ocwrap stop` (by id and by folder)
// and SIGTERM to a foreground `ocwrap spawn` still leave nothing behind.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  EXIT_BOUND_MS,
  OCWRAP,
  OPENCODE,
  OPENCODE_VERSION,
  TIMING_FLAGS,
  alive,
  assertDetachedAndMarked,
  assertNoneLeft,
  cleanUp,
  describeProcesses,
  environ,
  exitWithin,
  health,
  identify,
  killChecked,
  marked,
  openTerminal,
  run,
  sandbox,
  start,
  stat,
  waitFor,
} from "./harness.mjs";

/** Checks the --json object of `ocwrap spawn` against the contract. */
function assertSpawnInfo(info, folder, detached) {
  assert.equal(typeof info.id, "string", "id");
  assert.ok(info.id.length > 0, "id is empty");
  assert.equal(info.folder, folder, "folder");
  assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+\/?$/, "url");
  assert.equal(new URL(info.url).port, String(info.port), "port matches url");
  assert.ok(Number.isInteger(info.pids?.supervisor) && info.pids.supervisor > 1, "pids.supervisor");
  assert.ok(Number.isInteger(info.pids?.opencode) && info.pids.opencode > 1, "pids.opencode");
  assert.ok(!Number.isNaN(Date.parse(info.started_at)), `started_at: ${info.started_at}`);
  // Detached, opencode's output goes to a log file; in the foreground it goes
  // to ocwrap's own stderr and `log` is null.
  if (detached) assert.equal(typeof info.log, "string", "log");
  else assert.equal(info.log, null, "log");
}

/** A ready workspace plus a terminal with a setsid child; asserts both. */
async function workspaceWithTerminal(box, info, folder, { detached }) {
  assertSpawnInfo(info, folder, detached);
  const supervisor = identify(info.pids.supervisor);
  const opencode = identify(info.pids.opencode);
  assert.equal(stat(opencode.pid).ppid, supervisor.pid, "opencode should be the supervisor's child");
  assert.ok(environ(opencode.pid).includes(`OCWRAP_WORKSPACE=${info.id}`), "opencode lacks OCWRAP_WORKSPACE");
  assert.deepEqual(await health(info.url), { healthy: true, version: OPENCODE_VERSION });

  const { pty, setsid } = await openTerminal(info.url, folder);
  assertDetachedAndMarked(setsid, box.mark, "the terminal's setsid child");
  assert.ok(
    environ(setsid.pid).includes(`OCWRAP_WORKSPACE=${info.id}`),
    "the terminal's setsid child lacks OCWRAP_WORKSPACE",
  );
  return { supervisor, opencode, shell: identify(pty.pid), setsid };
}

function assertAllGone(procs) {
  for (const [what, proc] of Object.entries(procs)) assert.ok(!alive(proc), `${what} (${proc.pid}) survived`);
}

async function psJson(box, ...flags) {
  const ps = await run(OCWRAP, ["ps", "--json", ...flags], { env: box.env });
  assert.equal(ps.code, 0, `ocwrap ps --json: ${ps.stderr}`);
  return JSON.parse(ps.stdout);
}

describe("scenario 1: ocwrap spawn with real opencode", () => {
  // The control: shows the leak that ocwrap exists to fix, and that the
  // marker scan sees it (so "nothing marked is left" below means something).
  describe("control: opencode serve without ocwrap", () => {
    let box;
    before(() => {
      box = sandbox("control");
    });
    after(() => cleanUp(box));

    test("a terminal's setsid child outlives SIGKILL of opencode serve", async () => {
      const folder = box.folder("ws");
      const server = start(OPENCODE, ["serve", "--port=0", "--print-logs"], { cwd: folder, env: box.env });
      const line = await server.nextLine("opencode's listening line", (l) => /opencode server listening on /.test(l));
      const url = line.match(/opencode server listening on (\S+)/)[1];
      assert.deepEqual(await health(url), { healthy: true, version: OPENCODE_VERSION });
      const { setsid } = await openTerminal(url, folder);
      assertDetachedAndMarked(setsid, box.mark, "the terminal's setsid child");

      server.child.kill("SIGKILL");
      await server.exited;
      assert.ok(alive(setsid), "expected the setsid child to survive opencode (the leak ocwrap fixes)");
      const left = marked(box.mark);
      assert.ok(
        left.some((p) => p.pid === setsid.pid),
        `the marker scan does not see the survivor ${setsid.pid}:\n${describeProcesses(left)}`,
      );
    });
  });

  describe("detached workspaces ended by ocwrap stop", () => {
    let box;
    before(() => {
      box = sandbox("spawn-detached");
    });
    after(() => cleanUp(box));

    for (const by of ["id", "folder"]) {
      test(`spawn --detach --json, a terminal with a setsid child, then stop <${by}>`, async () => {
        const folder = box.folder(`ws-by-${by}`);
        const spawned = await run(OCWRAP, ["spawn", "--detach", "--json", ...TIMING_FLAGS, folder], { env: box.env });
        assert.equal(spawned.code, 0, `ocwrap spawn --detach: ${spawned.stderr}`);
        const info = JSON.parse(spawned.stdout);
        const procs = await workspaceWithTerminal(box, info, folder, { detached: true });
        // Detached: the supervisor leads a session of its own.
        assert.equal(stat(procs.supervisor.pid).sid, procs.supervisor.pid, "detached supervisor has no session");

        const listed = (await psJson(box)).find((w) => w.id === info.id);
        assert.ok(listed, `ocwrap ps does not list ${info.id}`);
        assert.equal(listed.state, "running");
        // --check gives each server 2 s to answer GET /global/health, which a
        // heavily loaded machine can miss once: ask again until a deadline.
        let health;
        await waitFor(
          "ocwrap ps --check to report the workspace healthy",
          async () => {
            health = (await psJson(box, "--check")).find((w) => w.id === info.id)?.health;
            return health === "healthy";
          },
          { timeoutMs: 30_000, intervalMs: 500 },
        ).catch((error) => assert.fail(`${error.message} (last: ${health})`));

        const stop = await run(OCWRAP, ["stop", ...TIMING_FLAGS, by === "id" ? info.id : folder], { env: box.env });
        assert.equal(stop.code, 0, `ocwrap stop: ${stop.stderr}`);
        assert.ok(stop.ms <= EXIT_BOUND_MS, `ocwrap stop took ${Math.round(stop.ms)} ms (> ${EXIT_BOUND_MS})`);
        assertAllGone(procs);
        assert.ok(
          !(await psJson(box)).some((w) => w.id === info.id && w.state === "running"),
          "ocwrap ps still lists the stopped workspace as running",
        );
      });
    }

    test("nothing marked is left", () => assertNoneLeft(box.mark));
  });

  describe("foreground spawn ended by SIGTERM or by its opencode dying", () => {
    let box;
    before(() => {
      box = sandbox("spawn-fg");
    });
    after(() => cleanUp(box));

    /** A foreground `ocwrap spawn --json` with a terminal in its workspace. */
    async function foregroundWorkspace(label) {
      const folder = box.folder(label);
      const ocwrap = start(OCWRAP, ["spawn", "--json", ...TIMING_FLAGS, folder], { env: box.env });
      const line = await ocwrap.nextLine("the JSON line of ocwrap spawn", (l) => l.startsWith("{"));
      const info = JSON.parse(line);
      assert.equal(info.pids.supervisor, ocwrap.pid, "a foreground spawn is its own supervisor");
      const procs = await workspaceWithTerminal(box, info, folder, { detached: false });
      return { ocwrap, procs };
    }

    test("spawn --json, a terminal with a setsid child, SIGTERM to ocwrap", async (t) => {
      const { ocwrap, procs } = await foregroundWorkspace("ws-sigterm");

      const t0 = performance.now();
      process.kill(ocwrap.pid, "SIGTERM");
      const result = await exitWithin(ocwrap, t0, EXIT_BOUND_MS, "ocwrap spawn");
      t.diagnostic(`ocwrap spawn exited with ${result.code} in ${Math.round(result.ms)} ms`);
      assert.notEqual(result.code, 125, `ocwrap reported survivors:\n${ocwrap.stderr}`);
      // opencode's own status, passed on: it died of the SIGTERM (143), of the
      // forced stage's SIGKILL (137: opencode 1.18.33 catches SIGTERM for a
      // while after a terminal opens), or exited cleanly (0).
      assert.ok([0, 137, 143].includes(result.code), `unexpected exit status ${result.code}:\n${ocwrap.stderr}`);
      assertAllGone(procs);
      assertNoneLeft(box.mark, "after SIGTERM to the foreground ocwrap spawn");
    });

    // The leak of the control case, with ocwrap: opencode dies, its
    // terminal's setsid child does not, and ocwrap must end it and exit.
    test("spawn --json, a terminal with a setsid child, SIGKILL of opencode", async () => {
      const { ocwrap, procs } = await foregroundWorkspace("ws-opencode-killed");
      const t0 = performance.now();
      assert.ok(killChecked(procs.opencode, "SIGKILL"), "could not SIGKILL opencode");
      const result = await exitWithin(ocwrap, t0, EXIT_BOUND_MS, "ocwrap spawn");
      assert.equal(result.code, 128 + 9, `exit status after opencode was SIGKILLed:\n${ocwrap.stderr}`);
      assertAllGone(procs);
      assertNoneLeft(box.mark, "after opencode of a foreground ocwrap spawn was SIGKILLed");
    });
  });
});
