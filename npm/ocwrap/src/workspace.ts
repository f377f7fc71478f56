/**
 * startWorkspace(): `ocwrap spawn --json FOLDER` in the foreground, as a
 * child of this process.
 *
 * The foreground supervisor arms a parent-death signal (SIGTERM) on itself,
 * so the workspace's whole tree is torn down when this process dies, even by
 * SIGKILL. It prints one JSON line once opencode is listening, and a second
 * one (`"event": "stopped"`) after its teardown. Its stderr carries its own
 * log lines and opencode's output: it is always read (a full pipe would
 * stall the supervisor) and passed on according to `output`.
 */
import { spawn, type ChildProcess } from "node:child_process";

import { findBinary } from "./binary.js";
import { durationArg, type Duration } from "./duration.js";
import { OcwrapError } from "./errors.js";
import { appendTail, failure, globalArgs, runBinary, spawnFailure, parseJson, type CommonOptions, type Finished } from "./run.js";
import {
  toStopResult,
  toTeardownReport,
  type ExitInfo,
  type RawSpawned,
  type RawStop,
  type RawStopped,
  type StopResult,
  type TeardownReport,
} from "./types.js";

export interface StartOptions extends CommonOptions {
  /** Time the tree gets after the stop signal before SIGKILL (`--grace`, binary default 10s). */
  grace?: Duration;
  /** Time allowed after SIGKILL to verify that nothing is left (`--kill-timeout`, default 5s). */
  killTimeout?: Duration;
  /** opencode's port (`--port`; default 0, any free port). */
  port?: number;
  /** opencode's hostname (`--hostname`). */
  hostname?: string;
  /** The opencode executable (`--opencode`; default OCWRAP_OPENCODE, else `opencode` on PATH). */
  opencode?: string;
  /** How long to wait for opencode's listening line (`--ready-timeout`, default 30s). */
  readyTimeout?: Duration;
  /**
   * Environment of the supervisor and opencode: these variables over
   * process.env; a variable set to undefined is removed.
   */
  env?: Record<string, string | undefined>;
  /** Extra arguments for `opencode serve` (after `--`). */
  opencodeArgs?: string[];
  /**
   * Cancels the start: before the workspace is ready, aborting tears it down
   * and startWorkspace() rejects with `signal.reason` once nothing is left.
   * After it is ready the signal is ignored (stop it with `stop()`), so that
   * a request's signal can be passed without tying the workspace's life to
   * the request.
   */
  signal?: AbortSignal;
  /**
   * Where the supervisor's stderr goes (its log lines and opencode's output),
   * line by line: "inherit" (default) writes it to this process's stderr,
   * "ignore" drops it, a function gets each line (if it throws, a warning is
   * emitted and it gets no more). The last 64 KiB are kept for error
   * messages in any case.
   */
  output?: "inherit" | "ignore" | ((line: string) => void);
}

export interface StopOptions extends CommonOptions {
  /**
   * `ocwrap stop --grace`: used when the workspace's supervisor is already
   * gone (its processes get the full graceful → forced teardown). A live
   * supervisor tears down with the grace it was started with.
   */
  grace?: Duration;
  /** `ocwrap stop --kill-timeout`: the time to verify that nothing is left. */
  killTimeout?: Duration;
}

/** A running workspace, started by startWorkspace(). */
export interface Workspace {
  readonly id: string;
  /** The folder opencode serves, as the binary resolved it (absolute, no symlinks). */
  readonly folder: string;
  readonly url: string;
  readonly port: number | null;
  readonly pids: { readonly supervisor: number; readonly opencode: number };
  readonly startedAt: Date;
  /** The log file (null: a foreground workspace's output comes to `output`). */
  readonly log: string | null;
  /** Resolves when the supervisor has exited (it never rejects). */
  readonly exited: Promise<ExitInfo>;
  /**
   * Stops the workspace and verifies that its whole tree is gone
   * (`ocwrap stop --json ID`). Resolves once nothing is left (and `exited`
   * has resolved); rejects with an OcwrapError carrying the survivors
   * otherwise. Calling it again returns the same promise.
   */
  stop(options?: StopOptions): Promise<StopResult>;
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let pending = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  });
  stream.on("end", () => {
    if (pending) onLine(pending);
    pending = "";
  });
}

function parseLine(line: string): Record<string, unknown> | undefined {
  const text = line.trim();
  if (!text.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function spawnArgs(folder: string, options: StartOptions): string[] {
  const args = ["spawn", "--json", ...globalArgs(options)];
  if (options.grace !== undefined) args.push("--grace", durationArg("grace", options.grace));
  if (options.killTimeout !== undefined) args.push("--kill-timeout", durationArg("killTimeout", options.killTimeout));
  if (options.port !== undefined) {
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new TypeError(`port must be an integer from 0 to 65535, not ${options.port}`);
    }
    args.push("--port", String(options.port));
  }
  if (options.hostname !== undefined) args.push("--hostname", options.hostname);
  if (options.opencode !== undefined) args.push("--opencode", options.opencode);
  if (options.readyTimeout !== undefined) args.push("--ready-timeout", durationArg("readyTimeout", options.readyTimeout));
  // A folder that looks like an option stays a folder.
  args.push(folder.startsWith("-") ? `./${folder}` : folder);
  if (options.opencodeArgs?.length) args.push("--", ...options.opencodeArgs);
  return args;
}

function environment(extra: StartOptions["env"]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(extra ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * Starts `opencode serve` for `folder` as a workspace under an ocwrap
 * supervisor that is a child of this process, and resolves once opencode is
 * listening. Rejects with an OcwrapError, with nothing left running, when
 * the folder is missing (OCWRAP_BAD_FOLDER), opencode is not found
 * (OCWRAP_OPENCODE_NOT_FOUND, exitCode 127) or the workspace is not ready in
 * time (OCWRAP_NOT_READY).
 *
 * Call it from the main thread: the parent-death signal follows the thread
 * that started the supervisor, so a workspace started from a worker thread
 * would end when that thread ends.
 */
export function startWorkspace(folder: string, options: StartOptions = {}): Promise<Workspace> {
  return new Promise<Workspace>((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    if (typeof folder !== "string" || folder === "") {
      reject(new TypeError("folder must be a non-empty string"));
      return;
    }
    let args: string[];
    let binary: string;
    try {
      args = spawnArgs(folder, options);
      binary = findBinary().path;
    } catch (error) {
      reject(error);
      return;
    }
    const output = options.output ?? "inherit";
    const child: ChildProcess = spawn(binary, args, {
      env: environment(options.env),
      stdio: ["ignore", "pipe", "pipe"],
    });

    let stderr = "";
    let ready: RawSpawned | undefined;
    let stopped: RawStopped | undefined;
    let settled = false;
    let aborted = false;

    const onAbort = () => {
      if (settled || aborted) return;
      aborted = true;
      // The supervisor's own teardown; startWorkspace() settles when it exits.
      child.kill("SIGTERM");
    };
    signal?.addEventListener("abort", onAbort, { once: true });

    let outputFailed = false;
    lines(child.stderr!, (line) => {
      stderr = appendTail(stderr, `${line}\n`);
      if (output === "inherit") process.stderr.write(`${line}\n`);
      else if (typeof output === "function" && !outputFailed) {
        // A throwing callback must not crash the app from inside a stream
        // event, nor stop the pipe from being drained.
        try {
          output(line);
        } catch (error) {
          outputFailed = true;
          process.emitWarning(`ocwrap: the output callback of workspace startup threw; no more lines go to it: ${error}`);
        }
      }
    });

    let exitedResolve!: (info: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((r) => (exitedResolve = r));

    lines(child.stdout!, (line) => {
      const value = parseLine(line);
      if (!value) return;
      if (value.event === "stopped") {
        stopped = value as unknown as RawStopped;
        return;
      }
      if (ready || typeof value.id !== "string" || typeof value.url !== "string") return;
      ready = value as unknown as RawSpawned;
      if (settled) return;
      if (aborted) return; // the teardown is under way; settle on exit
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(new WorkspaceHandle(ready, child, exited, options));
    });

    // Settle after 'exit' and the end of both pipes: by then the second JSON
    // line and the last stderr line have been read. A survivor may hold
    // stderr (opencode's children share it) and, in theory, stdout open
    // after the supervisor is gone: a second after the exit is enough.
    let exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let stdoutEnded = false;
    let stderrEnded = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const finish = (force = false) => {
      if (!exitStatus || (!force && !(stdoutEnded && stderrEnded))) return;
      if (drainTimer) clearTimeout(drainTimer);
      const { code, signal: sig } = exitStatus;
      exitStatus = undefined;
      const teardown: TeardownReport | null = stopped ? toTeardownReport(stopped) : null;
      exitedResolve({ code, signal: sig, teardown });
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      const error = failure({ code, signal: sig, stdout: "", stderr, args }, { survivors: teardown?.survivors ?? [] });
      // An aborted start rejects with the abort's reason, unless the
      // teardown it caused left survivors.
      reject(aborted && error.code !== "OCWRAP_SURVIVORS" ? signal!.reason : error);
    };
    child.stdout!.once("end", () => {
      stdoutEnded = true;
      finish();
    });
    child.stderr!.once("end", () => {
      stderrEnded = true;
      finish();
    });
    child.once("exit", (code, sig) => {
      exitStatus = { code, signal: sig };
      drainTimer = setTimeout(() => finish(true), 1000);
      finish();
    });
    child.once("error", (error) => {
      // The binary could not be started: no process, so nothing to clean up.
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      exitedResolve({ code: null, signal: null, teardown: null });
      reject(spawnFailure(error, binary, args));
    });
  });
}

class WorkspaceHandle implements Workspace {
  readonly id: string;
  readonly folder: string;
  readonly url: string;
  readonly port: number | null;
  readonly pids: { readonly supervisor: number; readonly opencode: number };
  readonly startedAt: Date;
  readonly log: string | null;
  readonly exited: Promise<ExitInfo>;
  #child: ChildProcess;
  #options: CommonOptions;
  #stopping: Promise<StopResult> | undefined;
  #exitInfo: ExitInfo | undefined;

  constructor(raw: RawSpawned, child: ChildProcess, exited: Promise<ExitInfo>, options: CommonOptions) {
    this.id = raw.id;
    this.folder = raw.folder;
    this.url = raw.url;
    this.port = raw.port;
    this.pids = Object.freeze({ supervisor: raw.pids.supervisor, opencode: raw.pids.opencode });
    this.startedAt = new Date(raw.started_at);
    this.log = raw.log;
    this.exited = exited;
    this.#child = child;
    this.#options = { stateDir: options.stateDir };
    void exited.then((info) => (this.#exitInfo = info));
  }

  stop(options: StopOptions = {}): Promise<StopResult> {
    this.#stopping ??= this.#stop(options);
    return this.#stopping;
  }

  async #stop(options: StopOptions): Promise<StopResult> {
    const args = ["stop", "--json", ...globalArgs({ stateDir: options.stateDir ?? this.#options.stateDir })];
    if (options.grace !== undefined) args.push("--grace", durationArg("grace", options.grace));
    if (options.killTimeout !== undefined) args.push("--kill-timeout", durationArg("killTimeout", options.killTimeout));
    args.push(this.id);
    const result = await runBinary(args);
    if (result.code === 0) {
      const raw = parseJson<RawStop>(result);
      const mine = raw.workspaces.find((w) => w.id === this.id);
      await this.exited;
      if (!mine) throw failure({ ...result, code: 125, stderr: `ocwrap: error: ocwrap stop did not report workspace ${this.id}\n` });
      return toStopResult(mine);
    }
    const error = failure(result, { result: tryParse(result) });
    if (error.code !== "OCWRAP_NO_MATCH") throw error;
    // No record: the supervisor removes it right before it exits after a
    // clean teardown (a teardown with survivors keeps it, and `stop` would
    // have found it). Our child is that supervisor: wait for it. If it is
    // somehow still running without a record, end it ourselves.
    if (!this.#exitInfo && this.#child.exitCode === null && this.#child.signalCode === null) {
      const timer = setTimeout(() => this.#child.kill("SIGTERM"), 1000);
      await this.exited;
      clearTimeout(timer);
    }
    const info = await this.exited;
    const t = info.teardown;
    if (t && !t.clean) {
      throw new OcwrapError(`workspace ${this.id}: survivors: ${t.survivors.map((s) => s.pid).join(", ")}`, {
        code: "OCWRAP_SURVIVORS",
        exitCode: info.code,
        survivors: t.survivors,
        args,
      });
    }
    if (info.code === 125 && !t) {
      // A teardown with survivors but no report (an older binary): say so
      // rather than claim a clean stop.
      throw new OcwrapError(`workspace ${this.id}: its supervisor exited with status 125 and no teardown report`, {
        code: "OCWRAP_SURVIVORS",
        exitCode: 125,
        args,
      });
    }
    return {
      id: this.id,
      folder: this.folder,
      clean: true,
      durationMs: t?.durationMs ?? 0,
      processes: 0,
      endedOnStopSignal: t?.endedOnStopSignal ?? 0,
      killed: t?.killed ?? 0,
      survivors: [],
    };
  }

  toJSON(): Omit<Workspace, "exited" | "stop"> {
    const { id, folder, url, port, pids, startedAt, log } = this;
    return { id, folder, url, port, pids, startedAt, log };
  }
}

function tryParse(result: Finished): unknown {
  try {
    return JSON.parse(result.stdout);
  } catch {
    return undefined;
  }
}
