// Shared by the journey and the bench: Debian's Chromium driven by playwright-core (no browser
// download), and axe-core run inside the page.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import { readFileSync, mkdirSync } from "node:fs";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // The machine's network is closed: no background traffic; as root Chromium needs --no-sandbox.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/** Serious and critical axe violations on the page as it is now (axe is evaluated through the
 * DevTools protocol, so the page's CSP stays enforced for the console's own scripts). */
export async function axe(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  return result.filter((v) => v.impact === "serious" || v.impact === "critical");
}

export function screensDir() {
  const dir = process.env.SCREENS_DIR || "screens";
  mkdirSync(dir, { recursive: true });
  return dir;
}
