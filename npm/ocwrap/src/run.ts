/**
 * Running the binary: arguments common to every command, one-shot commands
 * whose stdout is one JSON document, and turning a failure into an
 * OcwrapError.
 */
import { spawn } from "node:child_process";

import { findBinary } from "./binary.js";
import { OcwrapError, type OcwrapErrorCode, type Survivor } from "./errors.js";

/** Options every function of the API takes. */
export interface CommonOptions {
  /**
   * ocwrap's per-user state directory (workspace records, logs, counters):
   * `--state-dir`. Default: `OCWRAP_STATE_DIR`, else `$XDG_RUNTIME_DIR/ocwrap`,
   * else `/tmp/ocwrap-UID`, as the binary picks it.
   */
  stateDir?: string;
}

/** Keep at most this much of a command's stderr. */
export const STDERR_TAIL = 64 * 1024;

export function globalArgs(options: CommonOptions | undefined): string[] {
  return options?.stateDir ? ["--state-dir", options.stateDir] : [];
}

export function appendTail(tail: string, chunk: string): string {
  const text = tail + chunk;
  return text.length > STDERR_TAIL ? text.slice(-STDERR_TAIL) : text;
}

/**
 * The one line that says what went wrong: the last `ocwrap: error: ...` line
 * (without that prefix), else clap's `error: ...` line, else the last line.
 */
export function errorLine(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trimEnd()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /^ocwrap: error: (.*)$/.exec(lines[i]!);
    if (m) return m[1]!;
  }
  const clap = lines.find((l) => l.startsWith("error: "));
  if (clap) return clap.slice("error: ".length);
  return lines[lines.length - 1] ?? "";
}

/** Survivors named in stderr: `survivors: 123 (sleep), 456 (sh)` or `survivors: 123, 456`. */
export function survivorsFromStderr(stderr: string): Survivor[] {
  const out: Survivor[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^ocwrap: error: (?:.*: )?survivors: (.*?)(?: \(still running.*)?$/.exec(line.trimEnd());
    if (!m) continue;
    for (const part of m[1]!.split(", ")) {
      const p = /^(\d+)(?: \((.*)\))?$/.exec(part.trim());
      if (p && !out.some((s) => s.pid === Number(p[1]))) out.push({ pid: Number(p[1]), command: p[2] ?? "" });
    }
  }
  return out;
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  args: string[];
}

/** Classifies a failure by exit status and message. */
export function failureCode(result: Finished, message: string): OcwrapErrorCode {
  if (result.code === 127) return "OCWRAP_OPENCODE_NOT_FOUND";
  if (/never got ready/.test(message)) return "OCWRAP_NOT_READY";
  if (/^no workspace matches/.test(message)) return "OCWRAP_NO_MATCH";
  if (/^cannot use folder /.test(message)) return "OCWRAP_BAD_FOLDER";
  if (/survivors: /.test(message)) return "OCWRAP_SURVIVORS";
  return "OCWRAP_FAILED";
}

export function failure(result: Finished, extra: { survivors?: Survivor[]; result?: unknown } = {}): OcwrapError {
  const line = errorLine(result.stderr);
  const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.code}`;
  const message = line || `ocwrap ${result.args.find((a) => !a.startsWith("-")) ?? ""} ${how}`.replace(/  +/g, " ");
  const survivors = extra.survivors?.length ? extra.survivors : survivorsFromStderr(result.stderr);
  const code = survivors.length ? "OCWRAP_SURVIVORS" : failureCode(result, message);
  return new OcwrapError(message, {
    code,
    exitCode: result.code,
    signal: result.signal,
    survivors,
    stderr: result.stderr,
    args: result.args,
    result: extra.result,
  });
}

/** The error for a binary that could not be started at all. */
export function spawnFailure(error: NodeJS.ErrnoException, binary: string, args: string[]): OcwrapError {
  return new OcwrapError(`cannot run ${binary}: ${error.message}`, {
    code: "OCWRAP_NO_BINARY",
    exitCode: null,
    args,
    cause: error,
  });
}

/** Runs the binary to completion, collecting stdout and the end of stderr. */
export function runBinary(args: string[]): Promise<Finished> {
  const binary = findBinary().path;
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => (stdout += chunk));
    child.stderr.on("data", (chunk: string) => (stderr = appendTail(stderr, chunk)));
    child.once("error", (error) => reject(spawnFailure(error, binary, args)));
    // 'close' comes after the process exited and both pipes are drained.
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr, args }));
  });
}

/** Parses a command's one JSON document; a malformed one is an OcwrapError. */
export function parseJson<T>(result: Finished): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    throw new OcwrapError(
      `ocwrap ${result.args.join(" ")} printed no JSON document (exit status ${result.code}): ${JSON.stringify(result.stdout.slice(0, 200))}`,
      { code: "OCWRAP_FAILED", exitCode: result.code, signal: result.signal, stderr: result.stderr, args: result.args, cause: error },
    );
  }
}

/** Runs a command that prints one JSON document and exits 0 on success. */
export async function runJson<T>(args: string[]): Promise<T> {
  const result = await runBinary(args);
  if (result.code !== 0) throw failure(result);
  return parseJson<T>(result);
}
