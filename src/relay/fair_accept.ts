/**
 * Accept loops that let the rest of the relay run while a flood drains.
 *
 * When connections wait in a listener's queue, `accept()` resolves at once,
 * and an accept loop runs as one chain of promise callbacks: nothing else
 * happens until the queue is empty. Measured with 1,000 silent connections
 * reopened as fast as they are closed: the coordinator, which writes `busy`
 * to the connection it evicts and closes it once the write is done, then
 * held up to 512 sockets beyond its cap of 96, their writes not even started,
 * and ran out of descriptors under `ulimit -n 256`. One turn of the event
 * loop after each accept (about 3 µs) keeps it at its cap, and lets requests
 * in flight on the HTTP side go on during a flood.
 *
 * @module
 */

import { setImmediate } from "node:timers";

/** Resolves after one turn of the event loop, in which pending I/O completes (a macrotask, not a microtask). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** `listener`, whose `accept()` gives the event loop one turn before it resolves. */
export function fairListener<T extends Deno.Listener>(listener: T): T {
  const accept = async () => {
    const conn = await listener.accept();
    await nextTurn();
    return conn;
  };
  return new Proxy(listener, {
    get(target, property) {
      if (property === "accept") return accept;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
