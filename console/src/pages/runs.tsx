import { useEffect, useState } from "preact/hooks";
import { call, type Schemas } from "../api";
import { navigate } from "../router";
import { Copyable, Page, ProblemMessage, useAction, useResource, when } from "../ui";
import { OfferFields, ProfileCards, toOffer, type OfferDraft } from "./preview";

type Run = Schemas["RunView"];
const TERMINAL = ["completed", "cancelled", "failed"];

export function RunsPage() {
  const runs = useResource<Schemas["RunList"]>("/runs");
  const audiences = useResource<Schemas["AudiencesPage"]>("/audiences");
  const [audience, setAudience] = useState("");
  const [brief, setBrief] = useState("");
  const [offer, setOffer] = useState<OfferDraft>({ kind: "none" });
  const [holdout, setHoldout] = useState("10");
  const [cap, setCap] = useState("");
  const [review, setReview] = useState(true);
  const start = useAction(async () => {
    const a = audiences.data?.audiences.find((x) => x.id === audience);
    const r = await call<Schemas["RunCreated"]>("POST", "/runs", {
      audience: a ? { kind: a.kind, id: a.id } : { kind: "segment", id: audience },
      brief,
      offer: toOffer(offer),
      holdout_percent: Number(holdout),
      profile_cap: cap.trim() === "" ? null : Number(cap),
      review,
    });
    navigate(`/runs/${encodeURIComponent(r.run.run_id)}`);
  });
  return (
    <Page title="Runs">
      <section aria-labelledby="start-h">
        <h2 id="start-h">Start a run</h2>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void start.run();
          }}
        >
          <div class="field">
            <label for="run-audience">Audience</label>
            <select id="run-audience" required value={audience} onChange={(e) => setAudience((e.target as HTMLSelectElement).value)} aria-describedby="audience-error">
              <option value="">Choose a list or segment</option>
              {audiences.data?.audiences.map((a) => (
                <option value={a.id} key={a.id}>
                  {a.name} ({a.kind})
                </option>
              ))}
            </select>
            <ProblemMessage error={audiences.error} id="audience-error" />
          </div>
          <div class="field">
            <label for="run-brief">Brief</label>
            <textarea id="run-brief" rows={2} maxLength={500} required value={brief} onInput={(e) => setBrief((e.target as HTMLTextAreaElement).value)} />
          </div>
          <OfferFields offer={offer} onChange={setOffer} idPrefix="run" />
          <div class="field">
            <label for="run-holdout">Holdout (%)</label>
            <input id="run-holdout" type="number" min={0} max={50} value={holdout} onInput={(e) => setHoldout((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="run-cap">Profile cap (optional)</label>
            <input id="run-cap" type="number" min={1} value={cap} onInput={(e) => setCap((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field checkbox">
            <input id="run-review" type="checkbox" checked={review} onChange={(e) => setReview((e.target as HTMLInputElement).checked)} />
            <label for="run-review">Review samples before writing</label>
          </div>
          <ProblemMessage error={start.error} id="run-error" />
          <button type="submit" disabled={start.busy}>
            Start run
          </button>
        </form>
      </section>
      <section aria-labelledby="history-h">
        <h2 id="history-h">History</h2>
        <ProblemMessage error={runs.error} />
        {runs.data && runs.data.runs.length === 0 && <p>No runs yet.</p>}
        {runs.data && runs.data.runs.length > 0 && (
          <table>
            <thead>
              <tr>
                <th scope="col">Started</th>
                <th scope="col">Brief</th>
                <th scope="col">State</th>
                <th scope="col">Written</th>
              </tr>
            </thead>
            <tbody>
              {runs.data.runs.map((r) => (
                <tr key={r.run_id}>
                  <td>
                    <a href={`/runs/${encodeURIComponent(r.run_id)}`}>{when(r.created_at)}</a>
                  </td>
                  <td>{r.brief}</td>
                  <td>{r.state}</td>
                  <td>
                    {r.counts.written ?? 0} / {r.counts.total ?? 0}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </Page>
  );
}

function ReasonList({ label, counts }: { label: string; counts: Record<string, number> | undefined }) {
  const entries = Object.entries(counts ?? {}).filter(([, n]) => n > 0);
  const total = entries.reduce((s, [, n]) => s + n, 0);
  return (
    <>
      <dt>{label}</dt>
      <dd data-testid={`count-${label.toLowerCase()}`}>
        {total}
        {entries.length > 0 && (
          <ul>
            {entries.map(([k, n]) => (
              <li key={k}>
                {k.replace(/_/g, " ")}: {n}
              </li>
            ))}
          </ul>
        )}
      </dd>
    </>
  );
}

export function RunPage({ id }: { id: string }) {
  const path = `/runs/${encodeURIComponent(id)}`;
  const run = useResource<Run>(path);
  const state = run.data?.state;
  const samples = useResource<Schemas["RunSamples"]>(state === "awaiting_approval" ? `${path}/samples` : null);
  // Live progress: poll while the run can still change.
  useEffect(() => {
    if (!state || TERMINAL.includes(state)) return;
    const t = setInterval(() => void run.reload(), 1000);
    return () => clearInterval(t);
  }, [state, run.reload]);
  const act = useAction(async (what: "approve" | "cancel") => {
    run.setData(await call<Run>("POST", `${path}/${what}`));
  });
  const r = run.data;
  return (
    <Page title="Run">
      <ProblemMessage error={run.error} />
      {r && (
        <>
          <p>
            <strong>{r.brief}</strong> for {r.audience.kind} {r.audience.id}
          </p>
          <p>
            State: <strong data-testid="run-state">{r.state.replace(/_/g, " ")}</strong>
            {r.state_reason ? ` (${r.state_reason})` : ""}
          </p>
          <section aria-labelledby="progress-h">
            <h2 id="progress-h">Progress</h2>
            <progress max={r.counts.total || 1} value={Math.min(r.counts.total || 0, (r.counts.written ?? 0) + (r.counts.holdout ?? 0) + sum(r.counts.skipped) + sum(r.counts.failed))} aria-label="Profiles done" />
            <dl class="counts">
              <dt>Profiles</dt>
              <dd data-testid="count-total">{r.counts.total ?? 0}</dd>
              <dt>Written</dt>
              <dd data-testid="count-written">{r.counts.written ?? 0}</dd>
              <dt>Holdout</dt>
              <dd data-testid="count-holdout">{r.counts.holdout ?? 0}</dd>
              <ReasonList label="Skipped" counts={r.counts.skipped as Record<string, number>} />
              <ReasonList label="Failed" counts={r.counts.failed as Record<string, number>} />
              <dt>Profiles/s</dt>
              <dd>{r.profiles_per_second?.toFixed(1) ?? "–"}</dd>
              <dt>Cost so far</dt>
              <dd data-testid="cost">${r.estimated_cost_usd.toFixed(4)}</dd>
            </dl>
          </section>
          {!TERMINAL.includes(r.state) && (
            <div class="actions">
              {r.state === "awaiting_approval" && (
                <button type="button" disabled={act.busy} onClick={() => void act.run("approve")}>
                  Approve and write
                </button>
              )}
              <button type="button" class="danger" disabled={act.busy} onClick={() => void act.run("cancel")}>
                Cancel run
              </button>
            </div>
          )}
          <ProblemMessage error={act.error} id="run-action-error" />
          {r.state === "awaiting_approval" && (
            <section aria-labelledby="samples-h">
              <h2 id="samples-h">Samples to review</h2>
              <ProblemMessage error={samples.error} />
              {samples.data && <ProfileCards profiles={samples.data.samples} />}
            </section>
          )}
          <section aria-labelledby="snippet-h">
            <h2 id="snippet-h">Template snippet</h2>
            <p>Paste into your Klaviyo template: the email shows this run's copy, or nothing.</p>
            <Copyable label="Snippet" text={r.template_snippet} />
          </section>
        </>
      )}
    </Page>
  );
}

function sum(m: unknown): number {
  return Object.values((m ?? {}) as Record<string, number>).reduce((s, n) => s + n, 0);
}
