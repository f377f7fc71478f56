// Scenario 2: `ocwrap -- next start` supervising a Next.js workspace manager
// (./app) that starts real opencode servers, opens terminals in them and
// starts a setsid daemon that ignores SIGTERM, SIGINT and SIGHUP. However the
// server ends — SIGTERM or SIGINT to ocwrap, SIGKILL of the Next.js process,
// a crash — ocwrap must exit by itself within grace + kill-timeout and leave
// nothing behind.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  APP,
  EXIT_BOUND_MS,
  NEXT,
  OCWRAP,
  TIMING_FLAGS,
  alive,
  assertDetachedAndMarked,
  assertNoneLeft,
  cleanUp,
  describeProcesses,
  environ,
  exitWithin,
  freePort,
  identify,
  ignoredSignals,
  killChecked,
  marked,
  request,
  sandbox,
  start,
  waitFor,
} from "./harness.mjs";

/**
 * Starts `ocwrap -- next start` on 127.0.0.1 and builds the tree of a busy
 * workspace manager: three workspaces (two spawned directly by the app, one
 * through `ocwrap spawn --json`), a terminal with a setsid child in each, and
 * the app's signal-ignoring setsid daemon.
 */
async function startBusyApp(box) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const ocwrap = start(OCWRAP, [...TIMING_FLAGS, "--", NEXT, "start", "-H", "127.0.0.1", "-p", String(port)], {
    cwd: APP,
    env: {
      ...box.env,
      // For the app's `ocwrap spawn` workspaces.
      E2E_OCWRAP: OCWRAP,
      OCWRAP_GRACE: TIMING_FLAGS[1],
      OCWRAP_KILL_TIMEOUT: TIMING_FLAGS[3],
    },
  });
  const server = await waitFor(
    `the Next.js app on ${base}`,
    async () => {
      if (ocwrap.child.exitCode !== null) throw new Error(`ocwrap exited: ${ocwrap.stderr}`);
      const res = await request("GET", `${base}/api/health`, undefined, 5_000);
      return res.status === 200 && res.json;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  const tree = { ocwrap, base, server: identify(server.pid), workspaces: [], terminals: [] };
  assert.equal(server.ppid, ocwrap.pid, "the Next.js server should be ocwrap's child");

  const modes = ["direct", "ocwrap", "direct"];
  tree.workspaces = await Promise.all(
    modes.map(async (mode, i) => {
      const res = await request("POST", `${base}/api/workspaces`, {
        folder: box.folder(`ws${i}`),
        mode,
        // The three servers start at once: each gets its own opencode data dir.
        dataDir: box.folder(`data${i}`),
      });
      assert.equal(res.status, 201, `create ${mode} workspace: ${res.status} ${res.text}`);
      return res.json;
    }),
  );
  const listed = await request("GET", `${base}/api/workspaces`);
  assert.deepEqual(listed.json.map((w) => w.id).sort(), tree.workspaces.map((w) => w.id).sort());

  for (const ws of tree.workspaces) {
    const res = await request("POST", `${base}/api/workspaces/${ws.id}/pty`);
    assert.equal(res.status, 201, `open a terminal in ${ws.mode} workspace ${ws.id}: ${res.status} ${res.text}`);
    const setsid = identify(res.json.setsidPid);
    // The shell reports $! before the child has necessarily called setsid().
    await waitFor("the terminal's child to be a marked session leader", () => {
      assertDetachedAndMarked(setsid, box.mark, `the setsid child of a ${ws.mode} workspace's terminal`);
      return true;
    });
    if (ws.mode === "ocwrap") {
      assert.ok(
        environ(setsid.pid).includes(`OCWRAP_WORKSPACE=${ws.ocwrapId}`),
        "a process of an ocwrap workspace should carry OCWRAP_WORKSPACE",
      );
    }
    tree.terminals.push({ shell: identify(res.json.pty.pid), setsid });
  }

  const daemon = await request("POST", `${base}/api/daemon`);
  assert.equal(daemon.status, 201, `start the daemon: ${daemon.text}`);
  tree.daemon = identify(daemon.json.pid);
  // The daemon's setsid may not have run yet when the route answers.
  await waitFor("the daemon to be a session leader ignoring TERM, INT and HUP", () => {
    assertDetachedAndMarked(tree.daemon, box.mark, "the app's daemon");
    assert.deepEqual(ignoredSignals(tree.daemon.pid), ["SIGHUP", "SIGINT", "SIGTERM"]);
    return true;
  });

  tree.opencodes = tree.workspaces.map((ws) => identify(ws.opencodePid));
  for (const oc of tree.opencodes) assert.ok(alive(oc), `opencode ${oc.pid} should be running`);
  // ocwrap, next-server, 3 opencode, 3 terminal shells, 3 setsid children,
  // the inner `ocwrap spawn`, the daemon.
  const all = marked(box.mark);
  assert.ok(all.length >= 13, `expected at least 13 marked processes, found:\n${describeProcesses(all)}`);
  return tree;
}

/** After ocwrap has exited: every process of the tree is gone. */
function assertTreeGone(box, tree) {
  const named = [
    ["the Next.js server", tree.server],
    ["the daemon", tree.daemon],
    ...tree.opencodes.map((p) => ["opencode serve", p]),
    ...tree.terminals.flatMap((t) => [
      ["a terminal's shell", t.shell],
      ["a terminal's setsid child", t.setsid],
    ]),
  ];
  for (const [what, proc] of named) assert.ok(!alive(proc), `${what} (${proc.pid}) survived`);
  assertNoneLeft(box.mark, "after ocwrap exited");
}

const endings = [
  {
    name: "SIGTERM to ocwrap",
    // Next.js exits 0 on SIGTERM after closing its server; ocwrap passes the
    // status on.
    expect: { code: 0 },
    async trigger(tree) {
      process.kill(tree.ocwrap.pid, "SIGTERM");
    },
  },
  {
    name: "SIGINT to ocwrap",
    expect: { code: 0 },
    async trigger(tree) {
      process.kill(tree.ocwrap.pid, "SIGINT");
    },
  },
  {
    name: "SIGKILL of the Next.js server's node process",
    expect: { code: 128 + 9 },
    async trigger(tree) {
      assert.ok(killChecked(tree.server, "SIGKILL"), "could not SIGKILL the Next.js server");
    },
  },
  {
    name: "crash: uncaught exception thrown outside a request handler",
    expect: { code: 1 },
    async trigger(tree) {
      const res = await request("POST", `${tree.base}/api/crash?how=throw`);
      assert.equal(res.status, 202, `crash route: ${res.text}`);
    },
  },
  {
    name: "crash: process.exit(3) in the server",
    expect: { code: 3 },
    async trigger(tree) {
      const res = await request("POST", `${tree.base}/api/crash?how=exit`);
      assert.equal(res.status, 202, `crash route: ${res.text}`);
    },
  },
];

describe("scenario 2: ocwrap -- next start with three workspaces", () => {
  for (const ending of endings) {
    describe(ending.name, () => {
      let box;
      let tree;

      before(async () => {
        box = sandbox("next");
        tree = await startBusyApp(box);
      });

      after(() => cleanUp(box));

      test(`ocwrap exits with ${ending.expect.code} within grace + kill-timeout and nothing survives`, async () => {
        const t0 = performance.now();
        await ending.trigger(tree);
        const result = await exitWithin(tree.ocwrap, t0, EXIT_BOUND_MS, "ocwrap");
        assert.equal(result.signal, null, `ocwrap died of ${result.signal}`);
        assert.equal(
          result.code,
          ending.expect.code,
          `ocwrap exit status after ${ending.name}; stderr:\n${tree.ocwrap.stderr}`,
        );
        assertTreeGone(box, tree);
      });
    });
  }
});
