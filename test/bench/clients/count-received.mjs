// What the bench's Node clients print about a count of items received: after `warmup` s, {"measuring":true};
// after `seconds` s more, {"frames","bytes","seconds"} for the items counted in between.
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Measures `received()` (a running count) over `seconds` after `warmup`, items of `bytes` each. */
export async function countReceived(received, { warmup, seconds, bytes }) {
  await delay(Number(warmup) * 1000);
  console.log(JSON.stringify({ measuring: true }));
  const from = performance.now();
  const before = received();
  await delay(Number(seconds) * 1000);
  const frames = received() - before;
  console.log(JSON.stringify({ frames, bytes: frames * bytes, seconds: (performance.now() - from) / 1000 }));
}
