// The console's first load in headless Chromium: the bytes a browser transfers for `/` (every
// response from the console's origin, gzip-compressed as the CDN serves them) and the time until
// the page is interactive (the sign-in button rendered, from navigation start). Median of RUNS
// cold loads, each in a fresh browser context (no cache). Prints one JSON line.
//
//   CONSOLE_URL=http://127.0.0.1:PORT node e2e/bench.mjs
import { gzipSync } from "node:zlib";
import { launch } from "./browser.mjs";

const CONSOLE = (process.env.CONSOLE_URL || "").replace(/\/$/, "");
const RUNS = Number(process.env.RUNS || 5);
if (!CONSOLE) {
  console.error("CONSOLE_URL is required");
  process.exit(2);
}

const browser = await launch();
const loads = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const bodies = [];
    page.on("response", (r) => {
      if (r.url().startsWith(CONSOLE)) bodies.push(r.body().catch(() => Buffer.alloc(0)));
    });
    await page.goto(`${CONSOLE}/`, { waitUntil: "commit" });
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    const tti = await page.evaluate(() => performance.now());
    await page.waitForLoadState("networkidle");
    const raw = await Promise.all(bodies);
    loads.push({
      tti,
      bytes: raw.reduce((n, b) => n + b.length, 0),
      compressed: raw.reduce((n, b) => n + gzipSync(b).length, 0),
      requests: raw.length,
    });
    await context.close();
  }
} finally {
  await browser.close();
}
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  JSON.stringify({
    bench: "console",
    first_load_bytes_compressed: median(loads.map((l) => l.compressed)),
    first_load_bytes: median(loads.map((l) => l.bytes)),
    first_load_requests: median(loads.map((l) => l.requests)),
    time_to_interactive_ms: Math.round(median(loads.map((l) => l.tti))),
    budget_bytes_compressed: 200_000,
    runs: RUNS,
  }),
);
