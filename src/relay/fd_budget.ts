/**
 * One descriptor budget for both listeners: the HTTP connection cap and the
 * coordinator's caps (waiters, and connections that have not registered yet)
 * are cut from the same file limit, so that no flood on either port can
 * drive the process into EMFILE. Each connection is one descriptor.
 *
 * @module
 */

import type { FileLimit } from "./fd_limit.ts";

/** Descriptors kept for everything but connections: Deno's own (about 25), the listeners, `.env`, the socket lock. */
export const RESERVED_DESCRIPTORS = 64;
/** Default {@linkcode DescriptorWants.http}: a callback takes milliseconds, and idle connections make room. */
export const DEFAULT_MAX_HTTP_CONNECTIONS = 256;
/** The least either side gets, however low the limit. */
const MIN_HTTP = 8;
const MIN_WAITING = 2;
const MIN_PENDING = 2;
/** Share of a cut-down coordinator budget kept for connections that have not registered yet. */
const PENDING_SHARE = 0.4;

/** What the relay would use with descriptors to spare. */
export interface DescriptorWants {
  /** HTTP connections. */
  http: number;
  /** Waiting clients (`OAUTH_MAX_WAITERS`). */
  waiting: number;
  /** Coordinator connections that have not registered yet. */
  pending: number;
}

/** The caps the relay runs with, and the limit they come from. */
export interface DescriptorPlan {
  /** The limit the caps are cut from, and where it came from. */
  fileLimit: FileLimit;
  /** Descriptors left for everything but connections. */
  reserved: number;
  /** Most HTTP connections open at once, closing ones included. */
  http: number;
  /** Most coordinator connections: `waiting` + `pending`. */
  coordinator: number;
  /** Most waiting clients. */
  waiting: number;
  /** Most coordinator connections that have not registered yet. */
  pending: number;
  /** Whether the limit cut anything below `wants`. */
  reduced: boolean;
  /** The file limit that would give every side what it wants. */
  limitNeeded: number;
}

/**
 * Cuts the caps from `fileLimit`. With enough descriptors every side gets
 * what it wants. Otherwise the HTTP side gets half of what is left (or all
 * the coordinator does not need), up to what it wants, and the coordinator
 * the rest, of which {@linkcode PENDING_SHARE} is for connections that have
 * not registered: the callback port is public, and silent local connections
 * must not lock out a real client either.
 */
export function planDescriptors(fileLimit: FileLimit, wants: DescriptorWants): DescriptorPlan {
  const coordinatorWants = wants.waiting + wants.pending;
  const limitNeeded = RESERVED_DESCRIPTORS + wants.http + coordinatorWants;
  const usable = Math.max(0, fileLimit.limit - RESERVED_DESCRIPTORS);
  if (usable >= wants.http + coordinatorWants) {
    return {
      fileLimit,
      reserved: RESERVED_DESCRIPTORS,
      http: wants.http,
      coordinator: coordinatorWants,
      waiting: wants.waiting,
      pending: wants.pending,
      reduced: false,
      limitNeeded,
    };
  }
  const http = Math.max(MIN_HTTP, Math.min(wants.http, Math.max(Math.floor(usable / 2), usable - coordinatorWants)));
  const coordinator = Math.max(MIN_WAITING + MIN_PENDING, Math.min(coordinatorWants, usable - http));
  const pending = Math.max(MIN_PENDING, Math.min(wants.pending, Math.ceil(coordinator * PENDING_SHARE)));
  const waiting = Math.max(MIN_WAITING, Math.min(wants.waiting, coordinator - pending));
  return {
    fileLimit,
    reserved: RESERVED_DESCRIPTORS,
    http,
    coordinator: waiting + pending,
    waiting,
    pending,
    reduced: true,
    limitNeeded,
  };
}

/**
 * The one INFO line the relay logs at start, e.g. `File limit 256: up to 96
 * HTTP connections, 96 coordinator connections (57 waiting, 39 not yet
 * registered); OAUTH_MAX_WAITERS 10000 needs a file limit of 10384`.
 */
export function describePlan(plan: DescriptorPlan, wants: DescriptorWants, coordinator: boolean): string {
  const { fileLimit } = plan;
  const n = (value: number) => value.toLocaleString("en-US");
  const limit = fileLimit.source === "none"
    ? "No file limit"
    : fileLimit.source === "assumed"
    ? `File limit unknown, assumed ${n(fileLimit.limit)} (${fileLimit.why})`
    : `File limit ${n(fileLimit.limit)}${fileLimit.source === "given" ? " (given)" : ""}`;
  const sides = coordinator
    ? `up to ${n(plan.http)} HTTP connections, ${n(plan.coordinator)} coordinator connections ` +
      `(${n(plan.waiting)} waiting, ${n(plan.pending)} not yet registered)`
    : `up to ${n(plan.http)} HTTP connections`;
  const short = !plan.reduced
    ? ""
    : plan.waiting < wants.waiting && coordinator
    ? `; OAUTH_MAX_WAITERS ${wants.waiting} needs a file limit of ${plan.limitNeeded}`
    : `; ${n(wants.http)} HTTP connections need a file limit of ${plan.limitNeeded}`;
  return `${limit}: ${sides}${short}`;
}
