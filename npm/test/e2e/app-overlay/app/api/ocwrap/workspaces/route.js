// Workspaces through the ocwrap package's API: startWorkspace() runs a
// foreground `ocwrap spawn`, so each workspace dies with this server.
import { listWorkspaces, OcwrapError, startWorkspace } from "ocwrap";

export const dynamic = "force-dynamic";

function failure(error) {
  if (error instanceof OcwrapError) {
    const { message, code, exitCode, survivors } = error;
    return Response.json({ error: message, code, exitCode, survivors }, { status: 500 });
  }
  return Response.json({ error: String(error?.message ?? error) }, { status: 500 });
}

export async function GET() {
  try {
    return Response.json(await listWorkspaces());
  } catch (error) {
    return failure(error);
  }
}

// Body: {"folder": "/abs/path", "dataDir"?: "/abs/path"}; dataDir becomes
// opencode's XDG_DATA_HOME (opencode 1.18.33 locks a fresh shared data dir).
export async function POST(request) {
  const { folder, dataDir } = await request.json();
  try {
    const workspace = await startWorkspace(folder, {
      grace: "3s",
      killTimeout: 3000,
      readyTimeout: "60s",
      env: dataDir ? { XDG_DATA_HOME: dataDir } : {},
      signal: request.signal,
    });
    return Response.json(workspace, { status: 201 });
  } catch (error) {
    return failure(error);
  }
}
