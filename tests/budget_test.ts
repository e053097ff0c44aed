import assert from "node:assert/strict";
import { ConnectionBudget } from "../src/relay/coordinator/budget.ts";

const conn = (host: string | null) => ({ host });

Deno.test("when silent connections fill their budget, the oldest makes room for the newest", () => {
  const budget = new ConnectionBudget<{ host: string | null }>({ maxConnections: 100, maxPending: 2, maxPerPeer: 10 });
  const [a, b, c] = [conn(null), conn(null), conn(null)];
  assert.deepEqual(budget.admit(a), { admitted: true, evict: undefined });
  assert.deepEqual(budget.admit(b), { admitted: true, evict: undefined });
  assert.deepEqual(budget.admit(c), { admitted: true, evict: a });
  assert.deepEqual([budget.open, budget.pending], [2, 2]);
});

Deno.test("a connection that has spoken no longer counts as silent and is never evicted", () => {
  const budget = new ConnectionBudget<{ host: string | null }>({ maxConnections: 100, maxPending: 1, maxPerPeer: 10 });
  const [talker, silent, next] = [conn(null), conn(null), conn(null)];
  budget.admit(talker);
  budget.heard(talker);
  budget.admit(silent);
  assert.deepEqual(budget.admit(next), { admitted: true, evict: silent });
  assert.deepEqual([budget.open, budget.pending], [2, 1]);
});

Deno.test("with every connection registered and the cap reached, a new one is refused", () => {
  const budget = new ConnectionBudget<{ host: string | null }>({ maxConnections: 2, maxPending: 2, maxPerPeer: 10 });
  for (const registered of [conn(null), conn(null)]) {
    budget.admit(registered);
    budget.heard(registered);
  }
  const refused = budget.admit(conn(null));
  assert.equal(refused.admitted, false);
});

Deno.test("peers beyond loopback have a cap per address; loopback peers share the silent budget only", () => {
  const budget = new ConnectionBudget<{ host: string | null }>({ maxConnections: 100, maxPending: 100, maxPerPeer: 2 });
  const remote = [conn("10.0.0.7"), conn("10.0.0.7")];
  for (const c of remote) assert.equal(budget.admit(c).admitted, true);
  const third = budget.admit(conn("10.0.0.7"));
  assert.equal(third.admitted, false);
  assert.equal(budget.admit(conn("10.0.0.8")).admitted, true, "another address has its own cap");
  for (let i = 0; i < 5; i++) assert.equal(budget.admit(conn("127.0.0.1")).admitted, true);
  budget.release(remote[0]);
  assert.equal(budget.admit(conn("10.0.0.7")).admitted, true, "a closed connection frees its place");
});
