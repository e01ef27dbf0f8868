import { useState } from "preact/hooks";
import { call, type Schemas } from "../api";
import { Page, ProblemMessage, useAction } from "../ui";

type Offer = Schemas["Offer"];

/** The offer form's state: every field of every kind, so switching kinds keeps what was typed. */
export type OfferDraft = {
  kind: "none" | "percent_off" | "amount_off" | "free_shipping";
  percent?: number;
  amount?: string;
  min_spend?: string;
};

/** The offer the API takes: only the fields of the chosen kind (each kind's schema refuses others). */
export function toOffer(d: OfferDraft): Offer {
  const min = d.min_spend ? { min_spend: d.min_spend } : {};
  switch (d.kind) {
    case "percent_off":
      return { kind: "percent_off", percent: d.percent ?? 0, ...min };
    case "amount_off":
      return { kind: "amount_off", amount: d.amount ?? "", ...min } as Offer;
    case "free_shipping":
      return { kind: "free_shipping", ...min };
    default:
      return { kind: "none" };
  }
}

/** Offer inputs shared by the preview and the run form. */
export function OfferFields({ offer, onChange, idPrefix }: { offer: OfferDraft; onChange: (o: OfferDraft) => void; idPrefix: string }) {
  const kind = offer.kind ?? "none";
  return (
    <fieldset>
      <legend>Offer</legend>
      <div class="field">
        <label for={`${idPrefix}-offer-kind`}>Kind</label>
        <select
          id={`${idPrefix}-offer-kind`}
          value={kind}
          onChange={(e) => onChange({ ...offer, kind: (e.target as HTMLSelectElement).value as OfferDraft["kind"] })}
        >
          <option value="none">No offer</option>
          <option value="percent_off">Percent off</option>
          <option value="amount_off">Amount off</option>
          <option value="free_shipping">Free shipping</option>
        </select>
      </div>
      {kind === "percent_off" && (
        <div class="field">
          <label for={`${idPrefix}-offer-percent`}>Percent (1–90)</label>
          <input id={`${idPrefix}-offer-percent`} type="number" min={1} max={90} value={offer.percent ?? ""} onInput={(e) => onChange({ ...offer, percent: Number((e.target as HTMLInputElement).value) })} />
        </div>
      )}
      {kind === "amount_off" && (
        <div class="field">
          <label for={`${idPrefix}-offer-amount`}>Amount</label>
          <input id={`${idPrefix}-offer-amount`} value={offer.amount ?? ""} onInput={(e) => onChange({ ...offer, amount: (e.target as HTMLInputElement).value })} />
        </div>
      )}
      {(kind === "amount_off" || kind === "free_shipping" || kind === "percent_off") && (
        <div class="field">
          <label for={`${idPrefix}-offer-min`}>Minimum spend (optional)</label>
          <input id={`${idPrefix}-offer-min`} value={offer.min_spend ?? ""} onInput={(e) => onChange({ ...offer, min_spend: (e.target as HTMLInputElement).value || undefined })} />
        </div>
      )}
    </fieldset>
  );
}

/** Customers side by side: what the model saw, what it picked, what it wrote, and the check. */
export function ProfileCards({ profiles }: { profiles: Schemas["PreviewProfile"][] }) {
  return (
    <div class="side-by-side">
      {profiles.map((p, i) => (
        <article class="card profile" key={i} aria-labelledby={`profile-${i}`}>
          <h3 id={`profile-${i}`}>{p.first_name || p.requested}</h3>
          <p>
            Outcome: <strong data-testid="outcome">{p.outcome}</strong>
            {p.reason ? ` (${p.reason})` : ""}
          </p>
          <h4>History</h4>
          <pre class="history">{p.history || "No orders."}</pre>
          <h4>Picks</h4>
          <ul>
            {p.candidates.map((c) => (
              <li key={c.url}>
                {c.title} · {c.price}
              </li>
            ))}
          </ul>
          <h4>Copy</h4>
          {p.copy ? (
            <div class="copy" data-testid="copy">
              <p>
                <strong>Subject:</strong> {p.copy.subject}
              </p>
              <p>
                <strong>Preheader:</strong> {p.copy.preheader}
              </p>
              <p class="body">{p.copy.body}</p>
            </div>
          ) : (
            <p>No copy: it did not pass the checks.</p>
          )}
          <h4>Grounding</h4>
          <p data-testid="grounding">
            {p.grounding.passed ? "Passed" : "Failed"}
            {p.grounding.repaired ? " after one repair" : ""}
          </p>
          {p.grounding.findings.length > 0 && (
            <ul>
              {p.grounding.findings.map((f) => (
                <li key={f}>{f}</li>
              ))}
            </ul>
          )}
        </article>
      ))}
    </div>
  );
}

export function PreviewPage() {
  const [brief, setBrief] = useState("");
  const [profiles, setProfiles] = useState("");
  const [offer, setOffer] = useState<OfferDraft>({ kind: "none" });
  const [result, setResult] = useState<Schemas["PreviewResponse"] | null>(null);
  const preview = useAction(async () => {
    setResult(
      await call<Schemas["PreviewResponse"]>("POST", "/preview", {
        brief,
        offer: toOffer(offer),
        profiles: profiles.split(/[\s,]+/).filter(Boolean),
      }),
    );
  });
  return (
    <Page title="Preview">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void preview.run();
        }}
      >
        <div class="field">
          <label for="preview-brief">Brief</label>
          <textarea id="preview-brief" rows={2} maxLength={500} required value={brief} onInput={(e) => setBrief((e.target as HTMLTextAreaElement).value)} />
        </div>
        <div class="field">
          <label for="preview-profiles">Customers (emails or Klaviyo profile ids, one a line)</label>
          <textarea id="preview-profiles" rows={3} required value={profiles} onInput={(e) => setProfiles((e.target as HTMLTextAreaElement).value)} />
        </div>
        <OfferFields offer={offer} onChange={setOffer} idPrefix="preview" />
        <ProblemMessage error={preview.error} id="preview-error" />
        <button type="submit" disabled={preview.busy}>
          {preview.busy ? "Writing…" : "Preview"}
        </button>
      </form>
      {result && (
        <section aria-labelledby="preview-results">
          <h2 id="preview-results">Results</h2>
          <p>Estimated cost: ${result.estimated_cost_usd.toFixed(4)}</p>
          <ProfileCards profiles={result.profiles} />
        </section>
      )}
    </Page>
  );
}
