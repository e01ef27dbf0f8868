/** The API client: typed by the schema generated from GET /openapi.json (src/api/schema.d.ts).
 * Every non-2xx answer becomes an ApiProblem carrying the RFC 9457 problem document. */
import type { components } from "./api/schema";
import { accessToken, refresh, signIn } from "./auth";
import type { Config } from "./config";

export type Schemas = components["schemas"];
export type Problem = Schemas["Problem"] & Record<string, unknown>;

export class ApiProblem extends Error {
  constructor(public problem: Problem) {
    super(problem.detail || problem.title);
  }
  /** The stable suffix of the problem `type`, e.g. `klaviyo-missing-scopes`. */
  get kind(): string {
    return (this.problem.type || "").split("/").pop() || "";
  }
}

let base = "";
export function initApi(c: Config) {
  base = c.apiUrl;
}

export async function call<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  const headers: Record<string, string> = {};
  const token = accessToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiProblem({
      type: "about:blank#network",
      title: "The API cannot be reached",
      status: 0,
      detail: "Check your connection and try again.",
    });
  }
  if (resp.status === 401 && !retried) {
    if (await refresh()) return call<T>(method, path, body, true);
    await signIn(location.pathname + location.search);
  }
  const text = await resp.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    const p = (json && typeof json === "object" ? json : {}) as Partial<Problem>;
    throw new ApiProblem({
      ...p,
      type: p.type || "about:blank",
      title: p.title || `HTTP ${resp.status}`,
      status: p.status || resp.status,
      detail: p.detail || resp.statusText || "The request failed.",
    } as Problem);
  }
  return json as T;
}

export const get = <T>(path: string) => call<T>("GET", path);
