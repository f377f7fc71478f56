/**
 * The registry-wide functions: list, stop, reap, counters and health, each
 * over one `ocwrap ... --json` command.
 */
import { readFileSync } from "node:fs";

import { durationArg, type Duration } from "./duration.js";
import { failure, globalArgs, parseJson, runBinary, runJson, type CommonOptions, type Finished } from "./run.js";
import {
  toCleanupMetrics,
  toReapResult,
  toStopSummary,
  toWorkspaceInfo,
  type CleanupMetrics,
  type HealthStatus,
  type RawPs,
  type RawReap,
  type RawStats,
  type RawStop,
  type ReapResult,
  type StopSummary,
  type WorkspaceInfo,
} from "./types.js";
import type { StopOptions, Workspace } from "./workspace.js";

export interface ListOptions extends CommonOptions {
  /** Also ask each server for health (`ps --check`: GET /global/health, 2 s each). */
  check?: boolean;
}

/** Every workspace in the registry (`ocwrap ps --json`), whoever started it. */
export async function listWorkspaces(options: ListOptions = {}): Promise<WorkspaceInfo[]> {
  const args = ["ps", "--json", ...globalArgs(options)];
  if (options.check) args.push("--check");
  const rows = await runJson<RawPs[]>(args);
  return rows.map(toWorkspaceInfo);
}

function limitArgs(options: { grace?: Duration; killTimeout?: Duration }): string[] {
  const args: string[] = [];
  if (options.grace !== undefined) args.push("--grace", durationArg("grace", options.grace));
  if (options.killTimeout !== undefined) args.push("--kill-timeout", durationArg("killTimeout", options.killTimeout));
  return args;
}

function tryParse(result: Finished): unknown {
  try {
    return JSON.parse(result.stdout);
  } catch {
    return undefined;
  }
}

async function stop(targets: string[], options: StopOptions): Promise<StopSummary> {
  const args = ["stop", "--json", ...globalArgs(options), ...limitArgs(options), ...targets];
  const result = await runBinary(args);
  const raw = tryParse(result) as RawStop | undefined;
  if (result.code !== 0) {
    const summary = raw && Array.isArray(raw.workspaces) ? toStopSummary(raw) : undefined;
    throw failure(result, {
      survivors: summary?.workspaces.flatMap((w) => w.survivors),
      result: summary,
    });
  }
  if (result.stdout.trim() === "" && targets.includes("--all")) {
    // Nothing was ever registered (no state directory yet).
    return { clean: true, workspaces: [] };
  }
  return toStopSummary(parseJson<RawStop>(result));
}

/**
 * Stops the workspace with this id, or every workspace serving this folder
 * (`ocwrap stop --json`), and verifies that each whole tree is gone.
 * Rejects with an OcwrapError: OCWRAP_NO_MATCH when nothing matches,
 * OCWRAP_SURVIVORS (with `survivors`, and the StopSummary as `result`) when
 * something is left.
 */
export function stopWorkspace(idOrFolder: string | Pick<Workspace, "id">, options: StopOptions = {}): Promise<StopSummary> {
  const target = typeof idOrFolder === "string" ? idOrFolder : idOrFolder?.id;
  if (typeof target !== "string" || target === "") {
    return Promise.reject(new TypeError("stopWorkspace needs a workspace id, a folder or a Workspace"));
  }
  // An id or folder that looks like an option stays a target.
  return stop([target.startsWith("-") ? `./${target}` : target], options);
}

/** Stops every workspace in the registry (`ocwrap stop --json --all`), verified as stopWorkspace. */
export function stopAllWorkspaces(options: StopOptions = {}): Promise<StopSummary> {
  return stop(["--all"], options);
}

export interface ReapOptions extends CommonOptions {
  /** List what would be ended, and why; end nothing. */
  dryRun?: boolean;
  /**
   * What an untracked server is (`--match WORDS`; default "opencode serve"):
   * its program's name (a trailing path component, after a leading
   * interpreter such as node), then its first arguments, word by word.
   */
  match?: string;
  /** Grace before SIGKILL for what is reaped (`--grace`, default 10s). */
  grace?: Duration;
  /** Time to verify after SIGKILL (`--kill-timeout`, default 5s). */
  killTimeout?: Duration;
}

/**
 * Ends what a crash left behind (`ocwrap reap --json`): workspaces whose
 * supervisor is dead but whose processes live, and your untracked orphaned
 * processes that are a `match` server (by their arguments), with their
 * descendants.
 * Rejects with OCWRAP_SURVIVORS (the ReapResult as `result`) when
 * something is left.
 */
export async function reap(options: ReapOptions = {}): Promise<ReapResult> {
  const args = ["reap", "--json", ...globalArgs(options), ...limitArgs(options)];
  if (options.dryRun) args.push("--dry-run");
  if (options.match !== undefined) args.push("--match", options.match);
  const result = await runBinary(args);
  const raw = tryParse(result) as RawReap | undefined;
  const parsed = raw && Array.isArray(raw.targets) ? toReapResult(raw) : undefined;
  if (result.code !== 0) throw failure(result, { survivors: parsed?.survivors, result: parsed });
  return parsed ?? toReapResult(parseJson<RawReap>(result));
}

/** ocwrap's cumulative teardown counters (`ocwrap stats --json`) as the seed plan's CleanupMetrics. */
export async function stats(options: CommonOptions = {}): Promise<CleanupMetrics> {
  return toCleanupMetrics(await runJson<RawStats>(["stats", "--json", ...globalArgs(options)]));
}

/** The command name of a process, and its parent, from /proc/PID/stat. */
function procStat(pid: number): { comm: string; ppid: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = text.lastIndexOf(")");
    return {
      comm: text.slice(text.indexOf("(") + 1, close),
      ppid: Number(text.slice(close + 2).split(" ")[1]),
    };
  } catch {
    return null;
  }
}

/** True if an ancestor of this process is an ocwrap supervisor. */
export function underOcwrap(): boolean {
  let pid = process.ppid;
  for (let hops = 0; pid > 0 && hops < 64; hops++) {
    const s = procStat(pid);
    if (!s) return false;
    if (s.comm === "ocwrap") return true;
    if (pid === 1) return false;
    pid = s.ppid;
  }
  return false;
}

export interface HealthOptions extends CommonOptions {
  /** Ask each workspace's server for health (default true). */
  check?: boolean;
}

/**
 * The seed plan's `/api/health/processes` status, from `ocwrap ps --json
 * --check` and `ocwrap stats --json`.
 */
export async function healthStatus(options: HealthOptions = {}): Promise<HealthStatus> {
  const check = options.check ?? true;
  const [workspaces, metrics] = await Promise.all([
    listWorkspaces({ stateDir: options.stateDir, check }),
    stats({ stateDir: options.stateDir }),
  ]);
  const running = workspaces.filter((w) => w.state === "running");
  return {
    totalWorkspaces: workspaces.length,
    runningWorkspaces: running.length,
    healthyProcesses: check ? running.filter((w) => w.health === "healthy").length : running.length,
    orphanedProcesses: workspaces.filter((w) => w.state === "orphaned").reduce((n, w) => n + w.processes, 0),
    lastCleanupTime: metrics.lastCleanupTime ? metrics.lastCleanupTime.toISOString() : null,
    cleanupHandlersRegistered: underOcwrap(),
  };
}

/**
 * A Next.js App Router GET handler for `app/api/health/processes/route.ts`:
 * `export const GET = healthRoute();`. It answers 200 with the HealthStatus
 * as JSON, or 500 with `{error, code, exitCode}` if ocwrap failed; never
 * cached.
 */
export function healthRoute(options: HealthOptions = {}): (request?: Request) => Promise<Response> {
  const headers = { "content-type": "application/json", "cache-control": "no-store" };
  return async () => {
    try {
      return new Response(JSON.stringify(await healthStatus(options)), { status: 200, headers });
    } catch (error) {
      const e = error as { message?: string; code?: string; exitCode?: number | null };
      const body = { error: String(e?.message ?? error), code: e?.code ?? null, exitCode: e?.exitCode ?? null };
      return new Response(JSON.stringify(body), { status: 500, headers });
    }
  };
}
