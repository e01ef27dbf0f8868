import { useState } from "preact/hooks";
import { call, type Schemas } from "../api";
import { Copyable, Page, ProblemMessage, useAction, useResource, when } from "../ui";

const KINDS: Schemas["TriggerKind"][] = ["checkout_abandoned", "post_purchase", "browse_abandoned", "welcome", "win_back", "custom"];

export function FlowsPage() {
  const list = useResource<Schemas["TriggerList"]>("/flows/triggers");
  const [name, setName] = useState("");
  const [kind, setKind] = useState<Schemas["TriggerKind"]>("checkout_abandoned");
  const [brief, setBrief] = useState("");
  const [set, setSet] = useState("");
  const [created, setCreated] = useState<Schemas["TriggerCreated"] | null>(null);
  const create = useAction(async () => {
    const r = await call<Schemas["TriggerCreated"]>("POST", "/flows/triggers", { name, kind, brief, property_set: set });
    setCreated(r);
    void list.reload();
  });
  return (
    <Page title="Flows">
      <p>Personalise Klaviyo flow emails as they are triggered: a flow's webhook step calls SendPersonal, which writes the copy to the profile before the email goes.</p>
      <section aria-labelledby="triggers-h">
        <h2 id="triggers-h">Triggers</h2>
        <ProblemMessage error={list.error} />
        {list.data && list.data.triggers.length === 0 && <p>No triggers yet.</p>}
        {list.data && list.data.triggers.length > 0 && (
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Written today</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {list.data.triggers.map((t) => (
                <tr key={t.trigger_id}>
                  <td>{t.name}</td>
                  <td>{t.kind.replace(/_/g, " ")}</td>
                  <td>{t.status}</td>
                  <td>{t.today.written}</td>
                  <td>{when(t.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="new-trigger-h">
        <h2 id="new-trigger-h">New trigger</h2>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void create.run();
          }}
        >
          <div class="field">
            <label for="trigger-name">Name</label>
            <input id="trigger-name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </div>
          <div class="field">
            <label for="trigger-kind">Kind</label>
            <select id="trigger-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as Schemas["TriggerKind"])}>
              {KINDS.map((k) => (
                <option value={k} key={k}>
                  {k.replace(/_/g, " ")}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="trigger-brief">Brief</label>
            <textarea id="trigger-brief" rows={2} required value={brief} onInput={(e) => setBrief((e.target as HTMLTextAreaElement).value)} />
          </div>
          <div class="field">
            <label for="trigger-set">Property set</label>
            <input id="trigger-set" required pattern="[a-z](?:[a-z0-9_]{0,22}[a-z0-9])?" value={set} onInput={(e) => setSet((e.target as HTMLInputElement).value)} aria-describedby="trigger-set-help" />
            <p id="trigger-set-help" class="help">Lowercase letters, digits and _, e.g. cart. Properties are written as sp_&lt;set&gt;_*.</p>
          </div>
          <ProblemMessage error={create.error} id="trigger-error" />
          <button type="submit" disabled={create.busy}>
            Create trigger
          </button>
        </form>
      </section>
      {created && (
        <section aria-labelledby="webhook-h" class="card">
          <h2 id="webhook-h">Set up the webhook in Klaviyo</h2>
          <p>The secret below is shown this once.</p>
          <Copyable label="URL" text={created.webhook.url} />
          <Copyable label="Header" text={`${created.webhook.header_name}: ${created.webhook.header_value}`} />
          <Copyable label="Body" text={created.webhook.body} />
          <Copyable label="Email snippet" text={created.webhook.email_snippet} />
        </section>
      )}
    </Page>
  );
}
