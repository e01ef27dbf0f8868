import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiProblem, get } from "./api";

/** A problem document (or any error) as a message a merchant can act on, placed where it arose. */
export function ProblemMessage({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  const p = error instanceof ApiProblem ? error.problem : null;
  const missing = Array.isArray(p?.missing_scopes) ? (p!.missing_scopes as string[]) : [];
  return (
    <div class="problem" role="alert" id={id} data-problem-type={p?.type}>
      <strong>{p ? p.title : "Something went wrong"}</strong>
      <span> {p ? p.detail : String((error as Error)?.message ?? error)}</span>
      {missing.length > 0 && (
        <ul aria-label="Missing scopes">
          {missing.map((s) => (
            <li key={s}>
              Missing scope <code>{s}</code>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Loads `path` on mount (and on `reload()`); keeps the previous data while reloading. */
export function useResource<T>(path: string | null) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const reload = useCallback(async () => {
    if (!path) return;
    setLoading(true);
    try {
      setData(await get<T>(path));
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  }, [path]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload, setData };
}

/** Runs an action, keeping its error to show beside the control that started it. */
export function useAction<A extends unknown[], R>(f: (...a: A) => Promise<R>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (...a: A): Promise<R | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await f(...a);
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error, setError };
}

export function Page({ title, children }: { title: string; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · SendPersonal`;
    document.getElementById("page-title")?.focus();
  }, [title]);
  return (
    <>
      <h1 id="page-title" tabIndex={-1}>
        {title}
      </h1>
      {children}
    </>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "never";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function Copyable({ label, text }: { label: string; text: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div class="copyable">
      <pre aria-label={label} tabIndex={0}>
        <code>{text}</code>
      </pre>
      <button
        type="button"
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(text);
            setCopied(true);
          } catch {
            setCopied(false);
          }
        }}
      >
        Copy {label.toLowerCase()}
      </button>
      <span role="status">{copied ? "Copied" : ""}</span>
    </div>
  );
}
