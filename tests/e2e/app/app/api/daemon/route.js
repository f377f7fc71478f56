import { spawn } from "node:child_process";

export const dynamic = "force-dynamic";

// Starts the kind of process that outlives a naive cleanup: a daemon in a
// session of its own (`setsid`) that ignores SIGTERM, SIGINT and SIGHUP.
// `trap ""` sets SIG_IGN, which survives exec, so `sleep` itself ignores them.
export function POST() {
  const child = spawn("setsid", ["/bin/sh", "-c", 'trap "" TERM INT HUP; exec sleep 86400'], {
    stdio: "ignore",
  });
  child.unref();
  return Response.json({ pid: child.pid }, { status: 201 });
}
