/**
 * ocwrap's JavaScript API: opencode workspaces that cannot outlive the app
 * that started them, verified stops, reaping after a crash, counters and a
 * health route. Every function runs the ocwrap binary (found as
 * `findBinary()` says) and reads its JSON output.
 */
export { startWorkspace, type StartOptions, type StopOptions, type Workspace } from "./workspace.js";
export {
  healthRoute,
  healthStatus,
  listWorkspaces,
  reap,
  stats,
  stopAllWorkspaces,
  stopWorkspace,
  type HealthOptions,
  type ListOptions,
  type ReapOptions,
} from "./commands.js";
export { OcwrapError, type OcwrapErrorCode, type Survivor } from "./errors.js";
export { findBinary, platformPackage, SUPPORTED_PLATFORMS, type BinaryLocation, type BinarySource } from "./binary.js";
export type { Duration } from "./duration.js";
export type { CommonOptions } from "./run.js";
export type {
  CleanupMetrics,
  ExitInfo,
  HealthStatus,
  ReapResult,
  ReapTarget,
  StopResult,
  StopSummary,
  TeardownReport,
  WorkspaceInfo,
  WorkspaceState,
} from "./types.js";
