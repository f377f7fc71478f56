import { listWorkspaces } from "../lib/workspaces.mjs";

export const dynamic = "force-dynamic";

export default function Home() {
  const workspaces = listWorkspaces();
  return (
    <main>
      <h1>Workspaces</h1>
      {workspaces.length === 0 ? (
        <p>None yet. POST /api/workspaces {"{"}folder, mode{"}"} to create one.</p>
      ) : (
        <ul>
          {workspaces.map((w) => (
            <li key={w.id}>
              {w.folder} ({w.mode}) <a href={w.url}>{w.url}</a> opencode pid {w.opencodePid}
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}
