import { createWorkspace, listWorkspaces } from "../../../lib/workspaces.mjs";

export const dynamic = "force-dynamic";

export function GET() {
  return Response.json(listWorkspaces());
}

// Body: {"folder": "/abs/path", "mode": "direct" | "ocwrap"}
export async function POST(request) {
  const { folder, mode } = await request.json();
  try {
    return Response.json(await createWorkspace({ folder, mode }), { status: 201 });
  } catch (error) {
    return Response.json({ error: String(error?.message ?? error) }, { status: 500 });
  }
}
