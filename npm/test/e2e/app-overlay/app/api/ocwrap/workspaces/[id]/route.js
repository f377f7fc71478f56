import { OcwrapError, stopWorkspace } from "ocwrap";

export const dynamic = "force-dynamic";

// Verified stop: 200 once the workspace's whole tree is gone.
export async function DELETE(_request, { params }) {
  const { id } = await params;
  try {
    return Response.json(await stopWorkspace(id));
  } catch (error) {
    const body = error instanceof OcwrapError
      ? { error: error.message, code: error.code, exitCode: error.exitCode, survivors: error.survivors }
      : { error: String(error?.message ?? error) };
    return Response.json(body, { status: error?.code === "OCWRAP_NO_MATCH" ? 404 : 500 });
  }
}
