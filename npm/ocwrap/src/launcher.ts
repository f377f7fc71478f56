#!/usr/bin/env node
/**
 * The `ocwrap` command of the npm package: runs the ocwrap binary with the
 * same arguments, so that `"start": "ocwrap -- next start"` works from
 * package.json.
 *
 * Where Node has process.execve (22.15+, 23.11+), the launcher replaces
 * itself with the binary: no second long-lived process stands between the
 * caller and the supervisor, and signals reach the binary directly.
 *
 * Elsewhere it spawns the binary and stays as its parent:
 * - every signal Node can catch is forwarded to the binary (see FORWARDED);
 * - the launcher ends as the binary ended: with its exit status, or killed
 *   by the same signal;
 * - OCWRAP_LAUNCHER_PID=<launcher pid> tells the binary that its parent is
 *   a launcher: it then arms a parent-death signal on itself, so that if
 *   the launcher is killed (even by SIGKILL) the binary tears the whole
 *   tree down. The binary removes the variable from CMD's environment.
 * - When stdin is not a terminal, the binary runs in a session of its own
 *   (setsid), so that a signal sent to the launcher's whole process group
 *   (`kill -INT -PGID`, what Ctrl-C does) reaches it once, forwarded, and
 *   not twice: ocwrap takes a second SIGINT or SIGTERM during its grace as
 *   "kill now". When stdin is a terminal the binary stays in the
 *   launcher's process group and session: it hands the terminal to CMD, so
 *   Ctrl-C goes to CMD alone, and CMD keeps its controlling terminal.
 *
 * The binary is found as the API finds it (OCWRAP_BINARY, the platform
 * package, PATH); when there is none the launcher says why and exits 127.
 */
import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { constants } from "node:os";
import { isatty } from "node:tty";
import { fileURLToPath } from "node:url";

import { findBinary } from "./binary.js";

/**
 * The signals forwarded to the binary: all of Node's catchable signals but
 * SIGCHLD (about the launcher's own child), SIGPROF (V8's profiler uses it),
 * and the synchronous fault signals SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV
 * and SIGSYS (a JavaScript listener cannot handle a real fault and would hang
 * the launcher; a launcher that dies of one is a launcher death, which the
 * binary turns into a teardown). SIGKILL and SIGSTOP cannot be caught.
 */
export const FORWARDED: readonly NodeJS.Signals[] = [
  "SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
  "SIGSTKFLT", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ",
  "SIGVTALRM", "SIGWINCH", "SIGIO", "SIGPWR",
];

function fail(message: string, code: number): never {
  process.stderr.write(`ocwrap: error: ${message}\n`);
  process.exit(code);
}

function main(): void {
  let binary: string;
  try {
    binary = findBinary().path;
  } catch (error) {
    fail((error as Error).message, 127);
  }
  // OCWRAP_BINARY naming this launcher would start it again and again.
  try {
    if (realpathSync(binary) === realpathSync(fileURLToPath(import.meta.url))) {
      fail(`${binary} is this launcher, not the ocwrap binary (check OCWRAP_BINARY)`, 127);
    }
  } catch {
    // unreadable: let the exec or spawn report it
  }
  const args = process.argv.slice(2);
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Only a launcher that stays as the binary's parent may claim to be one.
  delete env.OCWRAP_LAUNCHER_PID;

  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve === "function" && process.env.OCWRAP_LAUNCHER_NO_EXECVE !== "1") {
    try {
      execve.call(process, binary, [binary, ...args], env);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      fail(`cannot execute ${binary}: ${e.message}`, e.code === "ENOENT" ? 127 : 126);
    }
  }

  env.OCWRAP_LAUNCHER_PID = String(process.pid);
  const forward = new Map<NodeJS.Signals, () => void>();
  // isatty(0), not process.stdin.isTTY: creating process.stdin would make
  // the shared terminal non-blocking for the binary too.
  const child = spawn(binary, args, { stdio: "inherit", env, detached: !isatty(0) });
  for (const name of FORWARDED) {
    if (!(name in constants.signals)) continue;
    const handler = () => {
      try {
        child.kill(name);
      } catch {
        // The binary is gone; its exit is handled below.
      }
    };
    forward.set(name, handler);
    process.on(name, handler);
  }
  child.once("error", (error: NodeJS.ErrnoException) => {
    fail(`cannot execute ${binary}: ${error.message}`, error.code === "ENOENT" ? 127 : 126);
  });
  child.once("exit", (code, signal) => {
    for (const [name, handler] of forward) process.off(name, handler);
    if (signal) {
      // Die of the same signal: with no listener left, its default action
      // applies (Node resets the disposition when the last one goes).
      process.kill(process.pid, signal);
      // A signal whose default action does not end a process cannot have
      // ended the binary either; this is only a fallback.
      setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 1000).unref();
      return;
    }
    process.exit(code ?? 1);
  });
}

main();
