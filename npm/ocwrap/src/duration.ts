/**
 * Durations: a number is milliseconds; a string is passed to the binary as
 * it is, in the binary's own syntax ("2s", "500ms", "1m 30s"; a bare number
 * in a string is seconds), and the binary rejects a malformed one.
 */
export type Duration = number | string;

export function durationArg(name: string, value: Duration): string {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) {
      throw new TypeError(`${name} must be a non-negative number of milliseconds, not ${value}`);
    }
    return `${Math.round(value)}ms`;
  }
  if (typeof value === "string" && value.trim() !== "") return value.trim();
  throw new TypeError(`${name} must be a number of milliseconds or a duration string such as "2s", not ${JSON.stringify(value)}`);
}
