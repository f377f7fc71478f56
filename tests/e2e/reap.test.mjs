// Scenario 3: crash recovery with `ocwrap reap`. A detached workspace's
// supervisor is SIGKILLed, which leaves the setsid child of its terminal
// running with nobody watching; an untracked `opencode serve` is orphaned
// (its parent shell exited). `ocwrap reap` must end both and leave alone an
// `opencode serve` whose parent is alive.
//
// `reap` looks at every process of the user, so this scenario always passes
// --match with a pattern that holds its marker (the servers run through an
// `opencode` symlink under a folder named after the marker): it must never
// touch another opencode server on the machine.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  EXIT_BOUND_MS,
  OCWRAP,
  TIMING_FLAGS,
  alive,
  assertDetachedAndMarked,
  assertNoneLeft,
  childrenOf,
  cleanUp,
  describeProcesses,
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

const LISTENING = /opencode server listening on (\S+)/;

describe("scenario 3: ocwrap reap after a supervisor is SIGKILLed", () => {
  let box;
  before(() => {
    box = sandbox("reap");
  });
  after(() => cleanUp(box));

  test("reap ends the orphaned workspace and the untracked orphan, not a server with a live parent", async () => {
    const opencode = box.markedOpencode();
    const env = { ...box.env, OCWRAP_OPENCODE: opencode };
    const match = `${path.basename(path.dirname(opencode))}/opencode serve`;
    const bystander = {};

    // A detached workspace with a terminal whose setsid child will outlive
    // the workspace's opencode.
    const folder = box.folder("ws");
    const spawned = await run(OCWRAP, ["spawn", "--detach", "--json", ...TIMING_FLAGS, folder], { env });
    assert.equal(spawned.code, 0, `ocwrap spawn --detach: ${spawned.stderr}`);
    const info = JSON.parse(spawned.stdout);
    const supervisor = identify(info.pids.supervisor);
    const wsOpencode = identify(info.pids.opencode);
    const { setsid } = await openTerminal(info.url, folder);
    assertDetachedAndMarked(setsid, box.mark, "the terminal's setsid child");

    // The bystander: an opencode serve whose parent shell stays alive.
    bystander.shell = start("/bin/sh", ["-c", '"$0" serve --port=0 --print-logs & wait', opencode], {
      cwd: box.folder("bystander"),
      env,
    });
    await bystander.shell.nextLine("the bystander's listening line", (l) => LISTENING.test(l));
    const bystanderShell = identify(bystander.shell.pid);
    const [bystanderServer] = childrenOf(bystander.shell.pid).map((p) => identify(p.pid));
    assert.ok(bystanderServer, "the bystander opencode serve is not the shell's child");

    // The untracked orphan: its parent shell exits at once.
    const orphanLog = path.join(box.dir, "orphan.log");
    const launched = await run(
      "/bin/sh",
      ["-c", '"$0" serve --port=0 --print-logs >"$1" 2>&1 </dev/null & echo $!', opencode, orphanLog],
      { cwd: box.folder("orphan"), env },
    );
    assert.equal(launched.code, 0, launched.stderr);
    const orphan = identify(Number(launched.stdout.trim()));
    await waitFor("the orphan's listening line", () => LISTENING.test(readFileSync(orphanLog, "utf8")), {
      timeoutMs: 30_000,
    });
    const orphanParent = stat(orphan.pid).ppid;
    assert.ok(
      orphanParent === 1 || !/ocwrap/.test(stat(orphanParent)?.comm ?? ""),
      `the orphan was adopted by ocwrap ${orphanParent}: run the suite outside ocwrap`,
    );

    // The crash: SIGKILL the workspace's supervisor.
    assert.ok(killChecked(supervisor, "SIGKILL"), "could not SIGKILL the supervisor");
    await waitFor("the supervisor to die", () => !alive(supervisor));
    assert.ok(alive(setsid), "the terminal's setsid child should outlive the supervisor: nothing left to reap");
    const ps = await run(OCWRAP, ["ps", "--json"], { env });
    assert.equal(ps.code, 0, ps.stderr);
    const listed = JSON.parse(ps.stdout).find((w) => w.id === info.id);
    assert.equal(listed?.state, "orphaned", `ocwrap ps should call ${info.id} orphaned: ${ps.stdout}`);

    // --dry-run names the targets and touches nothing.
    const dry = await run(OCWRAP, ["reap", "--dry-run", "--json", "--match", match], { env });
    assert.equal(dry.code, 0, `ocwrap reap --dry-run: ${dry.stderr}`);
    const plan = JSON.parse(dry.stdout);
    const targeted = plan.targets.flatMap((t) => t.processes ?? [t.pid]);
    assert.ok(
      plan.targets.some((t) => t.workspace === info.id),
      `dry run does not target workspace ${info.id}: ${dry.stdout}`,
    );
    assert.ok(targeted.includes(setsid.pid), `dry run misses the setsid child ${setsid.pid}: ${dry.stdout}`);
    assert.ok(targeted.includes(orphan.pid), `dry run misses the untracked orphan ${orphan.pid}: ${dry.stdout}`);
    for (const p of [bystanderShell, bystanderServer]) {
      assert.ok(!targeted.includes(p.pid), `dry run targets the bystander ${p.pid}: ${dry.stdout}`);
    }
    assert.ok(alive(setsid) && alive(orphan), "--dry-run ended a process");

    // The real thing.
    const reap = await run(OCWRAP, ["reap", "--json", "--match", match, ...TIMING_FLAGS], { env });
    assert.equal(reap.code, 0, `ocwrap reap: ${reap.stdout}\n${reap.stderr}`);
    assert.ok(reap.ms <= EXIT_BOUND_MS, `ocwrap reap took ${Math.round(reap.ms)} ms (> ${EXIT_BOUND_MS})`);
    for (const [what, p] of Object.entries({ setsid, orphan, wsOpencode, supervisor })) {
      assert.ok(!alive(p), `${what} (${p.pid}) survived ocwrap reap`);
    }

    // The bystander and only the bystander is left.
    assert.ok(alive(bystanderShell), "ocwrap reap ended the bystander's shell");
    assert.ok(alive(bystanderServer), "ocwrap reap ended an opencode serve whose parent is alive");
    const bystanderPids = new Set([bystanderShell.pid, bystanderServer.pid]);
    const others = marked(box.mark).filter((p) => !bystanderPids.has(p.pid) && !bystanderPids.has(p.ppid));
    assert.equal(others.length, 0, `left after reap besides the bystander:\n${describeProcesses(others)}`);
    const after = JSON.parse((await run(OCWRAP, ["ps", "--json"], { env })).stdout);
    assert.ok(!after.some((w) => w.id === info.id && w.state !== "stopped"), `ps after reap: ${JSON.stringify(after)}`);

    // Our own cleanup, by PID.
    killChecked(bystanderServer, "SIGKILL");
    killChecked(bystanderShell, "SIGKILL");
    await bystander.shell.exited;
    await waitFor("the bystander to be gone", () => !alive(bystanderServer));
    assertNoneLeft(box.mark);
  });
});
