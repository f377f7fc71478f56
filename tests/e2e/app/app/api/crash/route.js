export const dynamic = "force-dynamic";

// Crashes the Next.js server the ways servers really die:
//   ?how=throw  an exception thrown outside any request handler (in a timer).
//               `next start` installs uncaughtException/unhandledRejection
//               handlers that only log (next/dist/server/lib/router-server.js),
//               so the route first removes them, as an app whose own crash
//               handler exits would: Node's default then ends the process
//               with status 1, the way a plain Node server dies.
//   ?how=exit   process.exit(3) from library code.
// The response is sent first so the caller can tell "crashed" from "refused".
export function POST(request) {
  const how = new URL(request.url).searchParams.get("how") ?? "throw";
  setTimeout(() => {
    if (how === "exit") process.exit(3);
    process.removeAllListeners("uncaughtException");
    process.removeAllListeners("unhandledRejection");
    throw new Error("e2e: crash requested through /api/crash");
  }, 100);
  return Response.json({ crashing: how, pid: process.pid }, { status: 202 });
}
