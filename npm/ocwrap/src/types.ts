/**
 * The API's result types, and the binary's JSON they are read from
 * (snake_case, as `ocwrap ... --json` prints it).
 */
import type { Survivor } from "./errors.js";

/** How a workspace's supervisor ended: `exited` resolves with this. */
export interface ExitInfo {
  /** The supervisor's exit status (opencode's, 128+N, or 125); null if it died of a signal. */
  code: number | null;
  /** The signal the supervisor died of, if it did. */
  signal: NodeJS.Signals | null;
  /**
   * The supervisor's teardown report (its second stdout line), or null if it
   * printed none (it was SIGKILLed, or the binary predates that line).
   */
  teardown: TeardownReport | null;
}

/** The supervisor's report on its own teardown. */
export interface TeardownReport {
  id: string;
  /** Why the teardown started, e.g. "SIGTERM", "CMD exited with status 0". */
  trigger: string;
  clean: boolean;
  durationMs: number;
  endedOnStopSignal: number;
  killed: number;
  survivors: Survivor[];
  exitCode: number;
}

/** One workspace's verified stop. */
export interface StopResult {
  id: string;
  folder: string;
  /** True when the workspace's whole tree is verifiably gone. */
  clean: boolean;
  durationMs: number;
  /** How many processes the workspace had (supervisor included). */
  processes: number;
  endedOnStopSignal: number;
  killed: number;
  survivors: Survivor[];
}

/** The result of stopping several workspaces (`stopWorkspace`, `stopAllWorkspaces`). */
export interface StopSummary {
  clean: boolean;
  workspaces: StopResult[];
}

export type WorkspaceState = "running" | "orphaned" | "dead";

/** A workspace as `ocwrap ps` lists it. */
export interface WorkspaceInfo {
  id: string;
  folder: string;
  url: string | null;
  port: number | null;
  pids: { supervisor: number; opencode: number | null };
  /** running: supervisor alive; orphaned: supervisor gone, some processes live; dead: nothing left. */
  state: WorkspaceState;
  startedAt: Date;
  uptimeSeconds: number;
  /** Live processes of the workspace, supervisor included. */
  processes: number;
  rssBytes: number;
  /** With `check`: whether GET /global/health answered 2xx; null without `check`. */
  health: "healthy" | "unresponsive" | null;
  /** The workspace's log file (detached workspaces), or null. */
  log: string | null;
}

/** One target of `reap`: an orphaned workspace or an untracked orphan, with its tree. */
export interface ReapTarget {
  pid: number;
  command: string;
  reason: string;
  /** The workspace id, for an orphaned workspace; null for an untracked orphan. */
  workspace: string | null;
  /** Every process of the target's tree (the target and its descendants). */
  processes: number[];
}

export interface ReapResult {
  dryRun: boolean;
  targets: ReapTarget[];
  survivors: Survivor[];
  /** null on a dry run. */
  endedOnStopSignal: number | null;
  /** null on a dry run. */
  killed: number | null;
}

/**
 * The seed plan's CleanupMetrics, from ocwrap's cumulative counters
 * (`ocwrap stats --json`; per user, in the state directory). Times are in
 * milliseconds.
 */
export interface CleanupMetrics {
  /** Teardowns run: every supervisor teardown, stop and reap that had processes to end. */
  totalShutdowns: number;
  /** Teardowns that left nothing running. */
  successfulCleanups: number;
  /** Teardowns that left survivors. */
  failedCleanups: number;
  /** Average teardown time, ms. */
  averageCleanupTime: number;
  /** Teardowns whose grace ran out, so that SIGKILL was needed. */
  timeoutOccurrences: number;
  /**
   * ocwrap does not retry a failed stop: one teardown runs graceful, then
   * forced, then verified. What it repeats is the sweep, a new scan of the
   * tree that catches processes forked or re-parented during the teardown.
   * This counts those extra sweeps (`resweeps`).
   */
  retryAttempts: number;
  /** Orphans found and ended by `reap` (`orphans_found`). */
  orphanedProcesses: number;
  /** The longest teardown, ms. */
  maxCleanupTime: number;
  /** All teardowns together, ms. */
  totalCleanupTime: number;
  /** Processes that ended on the stop signal. */
  processesEnded: number;
  /** Processes that had to be SIGKILLed. */
  processesKilled: number;
  /** When the last teardown finished, or null if none did (or the binary does not say). */
  lastCleanupTime: Date | null;
}

/**
 * The seed plan's `/api/health/processes` shape, as `healthRoute()`
 * returns it (JSON).
 */
export interface HealthStatus {
  /** Workspaces in the registry, in any state. */
  totalWorkspaces: number;
  /** Workspaces whose supervisor is alive. */
  runningWorkspaces: number;
  /** Running workspaces whose opencode answers GET /global/health (with `check: false`: running workspaces). */
  healthyProcesses: number;
  /** Live processes of orphaned workspaces (their supervisor is gone): what `reap()` would end for them. */
  orphanedProcesses: number;
  /** When the last teardown finished (ISO 8601), or null. */
  lastCleanupTime: string | null;
  /**
   * True when this process runs under an ocwrap supervisor (an ancestor is
   * ocwrap, as with `"start": "ocwrap -- next start"`): then even a SIGKILL
   * of the server ends every process it started. Workspaces started with
   * startWorkspace() are torn down with the server either way.
   */
  cleanupHandlersRegistered: boolean;
}

// --- the binary's JSON ---------------------------------------------------------

export interface RawSurvivor {
  pid: number;
  command: string;
}

export interface RawSpawned {
  id: string;
  folder: string;
  url: string;
  port: number | null;
  pids: { supervisor: number; opencode: number };
  started_at: string;
  log: string | null;
}

export interface RawStopped {
  event: "stopped";
  id: string;
  trigger: string;
  clean: boolean;
  duration_ms: number;
  ended_on_stop_signal: number;
  killed: number;
  survivors: RawSurvivor[];
  exit_code: number;
}

export interface RawStopWorkspace {
  id: string;
  folder: string;
  clean: boolean;
  duration_ms: number;
  processes: number;
  ended_on_stop_signal: number;
  killed: number;
  survivors: RawSurvivor[];
}

export interface RawStop {
  clean: boolean;
  workspaces: RawStopWorkspace[];
}

export interface RawPs {
  id: string;
  folder: string;
  url: string | null;
  port: number | null;
  pid: number;
  opencode_pid: number | null;
  state: WorkspaceState;
  started_at?: string;
  uptime_secs: number;
  processes: number;
  rss_bytes: number;
  health: "healthy" | "unresponsive" | null;
  log: string | null;
}

export interface RawReap {
  dry_run: boolean;
  targets: { pid: number; command: string; reason: string; workspace: string | null; processes: number[] }[];
  survivors: RawSurvivor[];
  ended_on_stop_signal: number | null;
  killed: number | null;
}

export interface RawStats {
  teardowns: number;
  clean: number;
  failed: number;
  total_ms: number;
  max_ms: number;
  grace_timeouts: number;
  resweeps: number;
  orphans_found: number;
  processes_ended: number;
  processes_killed: number;
  average_ms: number;
  last_teardown_at?: string | null;
}

// --- conversions -----------------------------------------------------------------

const survivors = (list: RawSurvivor[] | undefined): Survivor[] =>
  (list ?? []).map(({ pid, command }) => ({ pid, command }));

export function toStopResult(w: RawStopWorkspace): StopResult {
  return {
    id: w.id,
    folder: w.folder,
    clean: w.clean,
    durationMs: w.duration_ms,
    processes: w.processes,
    endedOnStopSignal: w.ended_on_stop_signal,
    killed: w.killed,
    survivors: survivors(w.survivors),
  };
}

export function toStopSummary(raw: RawStop): StopSummary {
  return { clean: raw.clean, workspaces: raw.workspaces.map(toStopResult) };
}

export function toTeardownReport(raw: RawStopped): TeardownReport {
  return {
    id: raw.id,
    trigger: raw.trigger,
    clean: raw.clean,
    durationMs: raw.duration_ms,
    endedOnStopSignal: raw.ended_on_stop_signal,
    killed: raw.killed,
    survivors: survivors(raw.survivors),
    exitCode: raw.exit_code,
  };
}

export function toWorkspaceInfo(raw: RawPs): WorkspaceInfo {
  return {
    id: raw.id,
    folder: raw.folder,
    url: raw.url,
    port: raw.port,
    pids: { supervisor: raw.pid, opencode: raw.opencode_pid },
    state: raw.state,
    // A binary older than started_at in `ps --json`: derived from the uptime.
    startedAt: raw.started_at ? new Date(raw.started_at) : new Date(Date.now() - raw.uptime_secs * 1000),
    uptimeSeconds: raw.uptime_secs,
    processes: raw.processes,
    rssBytes: raw.rss_bytes,
    health: raw.health,
    log: raw.log,
  };
}

export function toReapResult(raw: RawReap): ReapResult {
  return {
    dryRun: raw.dry_run,
    targets: raw.targets.map((t) => ({
      pid: t.pid,
      command: t.command,
      reason: t.reason,
      workspace: t.workspace,
      processes: [...t.processes],
    })),
    survivors: survivors(raw.survivors),
    endedOnStopSignal: raw.ended_on_stop_signal,
    killed: raw.killed,
  };
}

export function toCleanupMetrics(raw: RawStats): CleanupMetrics {
  return {
    totalShutdowns: raw.teardowns,
    successfulCleanups: raw.clean,
    failedCleanups: raw.failed,
    averageCleanupTime: raw.average_ms,
    timeoutOccurrences: raw.grace_timeouts,
    retryAttempts: raw.resweeps,
    orphanedProcesses: raw.orphans_found,
    maxCleanupTime: raw.max_ms,
    totalCleanupTime: raw.total_ms,
    processesEnded: raw.processes_ended,
    processesKilled: raw.processes_killed,
    lastCleanupTime: raw.last_teardown_at ? new Date(raw.last_teardown_at) : null,
  };
}
