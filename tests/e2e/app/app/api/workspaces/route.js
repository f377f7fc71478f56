import { createWorkspace, listWorkspaces } from "../../../lib/workspaces.mjs";

export const dynamic = "force-dynamic";

export function GET() {
  return Response.json(listWorkspaces());
}

// Body: {"folder": "/abs/path", "mode": "direct" | "ocwrap", "dataDir"?: "/abs/path"}
export async function POST(request) {
  const { folder, mode, dataDir } = await request.json();
  try {
    return Response.json(await createWorkspace({ folder, mode, dataDir }), { status: 201 });
  } catch (error) {
    return Response.json({ error: String(error?.message ?? error) }, { status: 500 });
  }
}
