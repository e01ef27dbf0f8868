/** Cognito managed login: authorization code with PKCE. Tokens live in this module only (never
 * in localStorage or sessionStorage); a reload signs in again silently through the managed
 * login's own session. Only the one-time PKCE verifier, state and return path cross the
 * redirect, in sessionStorage, and are removed on return. */
import type { Config } from "./config";

interface Tokens {
  access: string;
  refresh?: string;
  expiresAt: number;
  email?: string;
}

const PENDING = "sp.pkce";
let config: Config;
let tokens: Tokens | null = null;
let refreshing: Promise<boolean> | null = null;
let refreshTimer: number | undefined;
let redirecting = false;
const listeners = new Set<() => void>();

export function initAuth(c: Config) {
  config = c;
  // Back from the login page (restored from the back/forward cache): signing in may start again.
  window.addEventListener("pageshow", () => (redirecting = false));
}

export function onAuthChange(f: () => void) {
  listeners.add(f);
  return () => listeners.delete(f);
}

export const signedIn = () => tokens !== null;
export const userEmail = () => tokens?.email;

function b64url(bytes: Uint8Array): string {
  let s = "";
  bytes.forEach((b) => (s += String.fromCharCode(b)));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n: number): string {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** Sends the browser to the managed login; it comes back to /auth/callback. */
export async function signIn(returnTo: string): Promise<never> {
  // One redirect at a time: a second call would replace the pending verifier and state.
  if (redirecting) return new Promise<never>(() => {});
  redirecting = true;
  const verifier = random(48);
  const state = random(24);
  const challenge = b64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))),
  );
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, returnTo }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: config.redirectUri,
    state,
    scope: "openid email",
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${config.cognitoDomain}/oauth2/authorize?${q}`);
  return new Promise<never>(() => {});
}

export class AuthError extends Error {}

/** Finishes the redirect: checks `state`, swaps the code for tokens, returns where to go. */
export async function completeSignIn(search: string): Promise<string> {
  const params = new URLSearchParams(search);
  const pending = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (params.get("error")) {
    throw new AuthError(params.get("error_description") || params.get("error") || "sign-in failed");
  }
  if (!pending) throw new AuthError("This sign-in link was already used or has expired. Sign in again.");
  const { verifier, state, returnTo } = JSON.parse(pending);
  if (!params.get("code") || params.get("state") !== state) {
    throw new AuthError("The sign-in answer did not match this browser's request. Sign in again.");
  }
  await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code")!,
    redirect_uri: config.redirectUri,
    code_verifier: verifier,
  });
  return typeof returnTo === "string" && returnTo.startsWith("/") ? returnTo : "/";
}

function claims(jwt: string): Record<string, unknown> {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

async function tokenRequest(body: Record<string, string>) {
  const resp = await fetch(`${config.cognitoDomain}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: config.clientId, ...body }),
  }).catch(() => {
    throw new AuthError("The sign-in service cannot be reached. Check your connection and sign in again.");
  });
  const json = await resp.json().catch(() => ({}));
  if (!resp.ok || typeof json.access_token !== "string") {
    throw new AuthError(json.error_description || json.error || `token endpoint: HTTP ${resp.status}`);
  }
  const idClaims = typeof json.id_token === "string" ? claims(json.id_token) : {};
  tokens = {
    access: json.access_token,
    refresh: json.refresh_token ?? tokens?.refresh,
    expiresAt: Date.now() + (Number(json.expires_in) || 3600) * 1000,
    email: (idClaims.email as string) ?? tokens?.email,
  };
  clearTimeout(refreshTimer);
  // Refresh a minute before expiry so a long-running page keeps working.
  const wait = Math.max(5_000, tokens.expiresAt - Date.now() - 60_000);
  refreshTimer = window.setTimeout(() => void refresh(), wait);
  listeners.forEach((f) => f());
}

/** A fresh access token from the refresh token; false when there is none or it was refused. */
export function refresh(): Promise<boolean> {
  if (!tokens?.refresh) return Promise.resolve(false);
  refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh })
    .then(() => true)
    .catch(() => false)
    .finally(() => (refreshing = null));
  return refreshing;
}

export function accessToken(): string | null {
  return tokens?.access ?? null;
}

/** Revokes the refresh token, forgets the tokens and ends the managed login's session. */
export async function signOut(): Promise<never> {
  const refreshToken = tokens?.refresh;
  tokens = null;
  clearTimeout(refreshTimer);
  if (refreshToken) {
    await fetch(`${config.cognitoDomain}/oauth2/revoke`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: refreshToken, client_id: config.clientId }),
    }).catch(() => undefined);
  }
  const q = new URLSearchParams({ client_id: config.clientId, logout_uri: config.logoutUri });
  location.assign(`${config.cognitoDomain}/logout?${q}`);
  return new Promise<never>(() => {});
}
