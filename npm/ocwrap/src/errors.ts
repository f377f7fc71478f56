/**
 * The one error class of the API. Every failure of the ocwrap binary, and
 * every failure to find it, rejects with an OcwrapError.
 */

/** A process that was still running when ocwrap gave up on it. */
export interface Survivor {
  pid: number;
  /** Its command name (`/proc/PID/comm`). */
  command: string;
}

/**
 * What went wrong, for programs; `message` says it for people.
 *
 * - `OCWRAP_NO_BINARY`: no ocwrap binary was found (OCWRAP_BINARY, the
 *   platform package, PATH), or it could not be executed.
 * - `OCWRAP_UNSUPPORTED_PLATFORM`: there is no ocwrap binary for this
 *   platform (ocwrap runs on Linux only).
 * - `OCWRAP_BAD_FOLDER`: the workspace folder does not exist, is not a
 *   directory, or cannot be read (`cannot use folder X: ...`).
 * - `OCWRAP_OPENCODE_NOT_FOUND`: opencode was not found (exit code 127).
 * - `OCWRAP_NOT_READY`: the workspace never got ready: opencode did not
 *   print its listening line within `readyTimeout`, or exited first.
 * - `OCWRAP_NO_MATCH`: no workspace matches the id or folder given.
 * - `OCWRAP_SURVIVORS`: processes survived the stop; see `survivors`.
 * - `OCWRAP_FAILED`: anything else the binary reported (bad usage, an
 *   invalid duration, a system error); see `message` and `stderr`.
 */
export type OcwrapErrorCode =
  | "OCWRAP_NO_BINARY"
  | "OCWRAP_UNSUPPORTED_PLATFORM"
  | "OCWRAP_BAD_FOLDER"
  | "OCWRAP_OPENCODE_NOT_FOUND"
  | "OCWRAP_NOT_READY"
  | "OCWRAP_NO_MATCH"
  | "OCWRAP_SURVIVORS"
  | "OCWRAP_FAILED";

export interface OcwrapErrorDetails {
  code: OcwrapErrorCode;
  /** The binary's exit status; null if it did not run or died of a signal. */
  exitCode?: number | null;
  /** The signal the binary died of, if it did (e.g. "SIGKILL"). */
  signal?: NodeJS.Signals | null;
  survivors?: Survivor[];
  /** The end of the binary's stderr (at most 64 KiB). */
  stderr?: string;
  /** The arguments the binary was run with. */
  args?: string[];
  /** The parsed JSON result, when the binary printed one (stop, reap). */
  result?: unknown;
  cause?: unknown;
}

export class OcwrapError extends Error {
  override readonly name = "OcwrapError";
  readonly code: OcwrapErrorCode;
  /** The binary's exit status (127: opencode not found, 125: ocwrap's own error or survivors). */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** For stops and reaps: the processes still running. Empty otherwise. */
  readonly survivors: Survivor[];
  readonly stderr: string;
  readonly args: string[];
  /** The JSON result the binary printed, if any (a stop's or a reap's). */
  readonly result: unknown;

  constructor(message: string, details: OcwrapErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = details.code;
    this.exitCode = details.exitCode ?? null;
    this.signal = details.signal ?? null;
    this.survivors = details.survivors ?? [];
    this.stderr = details.stderr ?? "";
    this.args = details.args ?? [];
    this.result = details.result;
  }
}
