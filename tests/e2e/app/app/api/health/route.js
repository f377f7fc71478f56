// Readiness probe for the suite; also tells it which process is the Next.js
// server, so a scenario can SIGKILL exactly that process.
export const dynamic = "force-dynamic";

export function GET() {
  return Response.json({ ok: true, pid: process.pid, ppid: process.ppid });
}
