// A minimal npm registry on 127.0.0.1 that serves the packed tarballs of
// target/npm/ and nothing else, so that the packaged end-to-end test installs
// `ocwrap` exactly as a user does (`npm install ocwrap@VERSION`): npm reads
// the packument, picks the optional platform package whose os/cpu match this
// machine, downloads only that tarball and checks its integrity. No network
// beyond the loopback.
//
// Declared platforms that were not built here (see scripts/package-npm.sh)
// are served as packuments with their os/cpu but no tarball: npm must skip
// them by platform without ever asking for their tarball (`requests` shows
// what was asked for).

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { execFileSync } from "node:child_process";

function manifestOf(tarball) {
  return JSON.parse(execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" }));
}

/**
 * Starts the registry for the tarballs in `dir`; resolves with
 * {url, requests, close()}.
 */
export async function startRegistry(dir, { declared = {} } = {}) {
  const packages = new Map(); // name -> {manifest, file, data}
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".tgz"))) {
    const file = path.join(dir, name);
    const data = readFileSync(file);
    packages.set(manifestOf(file).name, { manifest: manifestOf(file), file: name, data });
  }
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = decodeURIComponent(req.url.split("?")[0]);
    const base = `http://127.0.0.1:${server.address().port}`;
    const tarball = /^\/tarballs\/(.+\.tgz)$/.exec(url);
    if (tarball) {
      const pkg = [...packages.values()].find((p) => p.file === tarball[1]);
      if (!pkg) return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": pkg.data.length });
      return void res.end(pkg.data);
    }
    const name = url.slice(1);
    const pkg = packages.get(name);
    let version;
    if (pkg) {
      version = {
        ...pkg.manifest,
        _id: `${name}@${pkg.manifest.version}`,
        dist: {
          tarball: `${base}/tarballs/${pkg.file}`,
          integrity: `sha512-${createHash("sha512").update(pkg.data).digest("base64")}`,
          shasum: createHash("sha1").update(pkg.data).digest("hex"),
        },
      };
    } else if (declared[name]) {
      // Declared, not built: a packument npm can judge by os/cpu alone.
      version = {
        ...declared[name],
        name,
        _id: `${name}@${declared[name].version}`,
        dist: { tarball: `${base}/tarballs/not-built-${name.replace("/", "-")}.tgz`, shasum: "0".repeat(40) },
      };
    } else {
      return void res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
    }
    const body = JSON.stringify({ name, "dist-tags": { latest: version.version }, versions: { [version.version]: version } });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    requests,
    packages,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
