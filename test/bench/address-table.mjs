// Memory and time of ConnectionRate's address table (connectionRate), full at 100,000 distinct addresses,
// then under a flood of 200,000 more. Run: node --expose-gc --import tsx test/bench/address-table.mjs
import { ConnectionRate } from '../../lib/admission/connection-rate.js';
const ipv4 = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const ipv6 = (i) => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
function run(address) {
  const rate = new ConnectionRate({ count: 20, interval: 10_000, maxAddresses: 100_000 });
  gc(); const before = process.memoryUsage().heapUsed;
  let t = performance.now();
  for (let i = 0; i < 99_999; i++) rate.over(address(i), 0); // just under the bound: nothing forgotten yet
  const fill = performance.now() - t;
  gc(); const full = process.memoryUsage().heapUsed; const size = rate.size;
  t = performance.now();
  for (let i = 100_000; i < 300_000; i++) rate.over(address(i), 1); // a flood of new addresses: generations roll
  const flood = performance.now() - t;
  t = performance.now();
  for (let i = 250_000; i < 300_000; i++) rate.over(address(i), 2); // seen again
  const again = performance.now() - t;
  gc(); const after = process.memoryUsage().heapUsed;
  return { size, MiB: +((full - before) / 2 ** 20).toFixed(1), bytesPerAddress: Math.round((full - before) / size), sizeAfterFlood: rate.size, MiBAfterFlood: +((after - before) / 2 ** 20).toFixed(1), nsNew: Math.round((fill / 99_999) * 1e6), nsNewInFlood: Math.round((flood / 200_000) * 1e6), nsSeenAgain: Math.round((again / 50_000) * 1e6) };
}
console.log(JSON.stringify({ ipv4: run(ipv4), ipv6: run(ipv6) }));
