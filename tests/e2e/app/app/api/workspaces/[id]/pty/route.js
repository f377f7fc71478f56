import { getWorkspace, openTerminal } from "../../../../../lib/workspaces.mjs";

export const dynamic = "force-dynamic";

// Opens a terminal in the workspace through opencode's own PTY API; the
// terminal's shell backgrounds a `setsid` process (see openTerminal).
export async function POST(_request, { params }) {
  const { id } = await params;
  const workspace = getWorkspace(id);
  if (!workspace) return Response.json({ error: `no workspace ${id}` }, { status: 404 });
  try {
    return Response.json(await openTerminal(workspace), { status: 201 });
  } catch (error) {
    return Response.json({ error: String(error?.message ?? error) }, { status: 500 });
  }
}
