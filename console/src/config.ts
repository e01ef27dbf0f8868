/** Runtime configuration, served as /config.json by whatever serves the console (CloudFront
 * from the stack's outputs, or the local runner), so one build runs anywhere. */
export interface Config {
  apiUrl: string;
  /** Base URL of the Cognito domain: `https://x.auth.<region>.amazoncognito.com` or the sandbox's `/cognito`. */
  cognitoDomain: string;
  clientId: string;
  redirectUri: string;
  logoutUri: string;
}

export async function loadConfig(): Promise<Config> {
  const resp = await fetch("/config.json", { cache: "no-store" });
  if (!resp.ok) throw new Error(`config.json: HTTP ${resp.status}`);
  const c = (await resp.json()) as Partial<Config>;
  for (const k of ["apiUrl", "cognitoDomain", "clientId", "redirectUri", "logoutUri"] as const) {
    if (typeof c[k] !== "string" || !c[k]) throw new Error(`config.json lacks ${k}`);
  }
  const trim = (u: string) => u.replace(/\/+$/, "");
  return { ...(c as Config), apiUrl: trim(c.apiUrl!), cognitoDomain: trim(c.cognitoDomain!) };
}
