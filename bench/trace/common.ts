/**
 * What the parts of `bench/trace.ts` share.
 *
 * @module
 */

/** The remote waiters' client token. */
export const CLIENT_TOKEN = "trace-client-token-0123456789abcdefghijkl";

const decoder = new TextDecoder();

/** Whether `bytes` start a coordinator `callback` line (`{"v":2,"type":"callback",…}`). */
export function isCallbackLine(bytes: Uint8Array): boolean {
  return bytes.length > 40 && decoder.decode(bytes.subarray(0, 40)).includes('"callback"');
}

/** Whether `bytes` start a server-sent `callback` event. */
export function isCallbackEvent(bytes: Uint8Array | undefined): boolean {
  return bytes !== undefined && bytes.length > 40 && decoder.decode(bytes.subarray(0, 15)) === "event: callback";
}

/** The `i`-th state of a trace run. */
export function traceState(i: number): string {
  return `trace.${i}`.padEnd(32, "s");
}
