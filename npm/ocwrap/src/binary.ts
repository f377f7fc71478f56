/**
 * Finding the ocwrap binary, in this order:
 *
 * 1. `OCWRAP_BINARY`, if set (it must name an executable file);
 * 2. the platform package, `@ocwrap/<platform>-<arch>` (an optional
 *    dependency of this package that npm installs only on its platform),
 *    resolved from this package with `require.resolve`;
 * 3. the first `ocwrap` on `PATH` that is a native executable. Scripts are
 *    skipped: `node_modules/.bin/ocwrap` is this package's own launcher.
 *
 * No install script is involved: npm may skip install scripts, and the
 * binary is a plain file of the platform package.
 */
import { accessSync, closeSync, constants, openSync, readSync, realpathSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

import { OcwrapError } from "./errors.js";

/** `<process.platform>-<process.arch>` values that have a platform package. */
export const SUPPORTED_PLATFORMS = ["linux-x64", "linux-arm64"] as const;

/** Where the binary came from. */
export type BinarySource = "OCWRAP_BINARY" | "package" | "PATH";

export interface BinaryLocation {
  path: string;
  source: BinarySource;
}

/** The platform package's name for a platform, or null if there is none. */
export function platformPackage(platform: string = process.platform, arch: string = process.arch): string | null {
  const key = `${platform}-${arch}`;
  return (SUPPORTED_PLATFORMS as readonly string[]).includes(key) ? `@ocwrap/${key}` : null;
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True if the file starts with the ELF magic: a native program, not a script. */
function isNative(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The binary inside the platform package, if that package is installed:
 * resolved from this module, as Node resolves any dependency, else from the
 * current directory's package (a bundler that moved this module, as Next.js
 * does with server code it bundles, may leave no node_modules above it).
 */
function fromPackage(name: string): { path?: string; problem?: string } {
  // The request is built at run time so that bundlers leave it alone.
  const request = [name, "bin", "ocwrap"].join("/");
  for (const base of [import.meta.url, path.join(process.cwd(), "package.json")]) {
    let file: string;
    try {
      file = createRequire(base).resolve(request);
    } catch {
      continue;
    }
    if (!isExecutableFile(file)) return { problem: `${file} (from ${name}) is not an executable file` };
    return { path: file };
  }
  return {};
}

function fromPath(): { path?: string; skipped: string[] } {
  const skipped: string[] = [];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, "ocwrap");
    if (!isExecutableFile(file)) continue;
    let real = file;
    try {
      real = realpathSync(file);
    } catch {
      // keep the unresolved name
    }
    if (isNative(real)) return { path: file, skipped };
    skipped.push(file);
  }
  return { skipped };
}

let cached: BinaryLocation | undefined;

/**
 * Finds the ocwrap binary (see the module's comment for the order); throws
 * an OcwrapError with code OCWRAP_NO_BINARY or OCWRAP_UNSUPPORTED_PLATFORM
 * when there is none. The result is cached, except when it came from
 * OCWRAP_BINARY, which is read on every call.
 */
export function findBinary(): BinaryLocation {
  const fromEnv = process.env.OCWRAP_BINARY;
  if (fromEnv) {
    if (!isExecutableFile(fromEnv)) {
      throw new OcwrapError(`OCWRAP_BINARY=${fromEnv} is not an executable file`, { code: "OCWRAP_NO_BINARY" });
    }
    return { path: fromEnv, source: "OCWRAP_BINARY" };
  }
  if (cached && isExecutableFile(cached.path)) return cached;
  const name = platformPackage();
  const pkg = name ? fromPackage(name) : {};
  if (pkg.path) return (cached = { path: pkg.path, source: "package" });
  const onPath = fromPath();
  if (onPath.path) return (cached = { path: onPath.path, source: "PATH" });

  const here = `${process.platform}-${process.arch}`;
  const skipped = onPath.skipped.length
    ? ` (skipped, not native executables: ${onPath.skipped.join(", ")})`
    : "";
  if (!name) {
    throw new OcwrapError(
      `ocwrap has no binary for ${here}: it runs on Linux only (${SUPPORTED_PLATFORMS.join(", ")}), ` +
        `and no ocwrap executable is on PATH${skipped}; set OCWRAP_BINARY to one you built`,
      { code: "OCWRAP_UNSUPPORTED_PLATFORM" },
    );
  }
  const why = pkg.problem
    ? pkg.problem
    : `the platform package ${name} is not installed (npm skips optional dependencies with ` +
      `--omit=optional or --no-optional, and a lockfile made on another platform may lack it: ` +
      `reinstall with \`npm install ocwrap\`)`;
  throw new OcwrapError(
    `cannot find the ocwrap binary: OCWRAP_BINARY is not set, ${why}, and no ocwrap executable is on PATH${skipped}`,
    { code: "OCWRAP_NO_BINARY" },
  );
}
