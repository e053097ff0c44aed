/**
 * Summarises a V8 `.cpuprofile` (from `deno task bench --profile DIR`): the
 * functions with the most self time, and the files they live in.
 *
 * Usage: `deno run --allow-read bench/profile_summary.ts FILE.cpuprofile [TOP]`
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, top = "25"] = Deno.args;
if (!file) {
  console.error("Usage: deno run --allow-read bench/profile_summary.ts FILE.cpuprofile [TOP]");
  Deno.exit(2);
}
const profile: Profile = JSON.parse(await Deno.readTextFile(file));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));

// Self time per node: each sample's delta goes to the node that was on top.
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...selfUs.values()].reduce((sum, value) => sum + value, 0);

const shortUrl = (url: string) => url.replace(/^file:\/\/.*?\/(src|bench|server\.ts)/, "$1").replace(/^ext:/, "ext:");
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : "(native)";
  const key = `${functionName || "(anonymous)"} ${where}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const fileKey = url ? shortUrl(url) : functionName || "(native)";
  byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
}

const show = (title: string, entries: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${(100 * us / total).toFixed(1).padStart(5)}%  ${key}`);
  }
};
// Total time per function: every sample counts once for each function on its stack.
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const keyOf = (node: ProfileNode) => {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || "(anonymous)"} ${url ? `${shortUrl(url)}:${lineNumber + 1}` : "(native)"}`;
};
const inclusive = new Map<string, number>();
profile.samples.forEach((id, i) => {
  const keys = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) keys.add(keyOf(byId.get(at)!));
  for (const key of keys) inclusive.set(key, (inclusive.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
inclusive.delete("(root) (native)");

console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
show("Self time by function", byFunction);
show("Self time by file (or native function)", byFile);
show("Total time (self and callees) by function", inclusive);
