export const dynamic = "force-dynamic";

// Crashes the Next.js server the two ways servers really die:
//   ?how=throw  an exception thrown outside any request handler (a timer),
//               so nothing in Next.js can catch it: uncaughtException;
//   ?how=exit   process.exit(3) from library code.
// The response is sent first so the caller can tell "crashed" from "refused".
export function POST(request) {
  const how = new URL(request.url).searchParams.get("how") ?? "throw";
  setTimeout(() => {
    if (how === "exit") process.exit(3);
    throw new Error("e2e: crash requested through /api/crash");
  }, 100);
  return Response.json({ crashing: how, pid: process.pid }, { status: 202 });
}
