import { useEffect, useState } from "preact/hooks";
import { call, type Schemas } from "../api";
import { Page, ProblemMessage, useAction, useResource } from "../ui";

type Settings = Schemas["Settings"];
const lines = (s: string) => s.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);

export function SettingsPage() {
  const res = useResource<Settings>("/settings");
  const [descriptors, setDescriptors] = useState("");
  const [rules, setRules] = useState("");
  const [language, setLanguage] = useState("en");
  const [signOff, setSignOff] = useState("");
  const [subject, setSubject] = useState("60");
  const [preheader, setPreheader] = useState("100");
  const [body, setBody] = useState("500");
  const [products, setProducts] = useState("3");
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const s = res.data;
    if (!s) return;
    setDescriptors((s.brand_voice?.descriptors ?? []).join(", "));
    setRules((s.brand_voice?.writing_rules ?? []).join("\n"));
    setLanguage(s.language ?? "en");
    setSignOff(s.sign_off ?? "");
    setSubject(s.slots?.subject ? String(s.slots.subject.max_chars) : "");
    setPreheader(s.slots?.preheader ? String(s.slots.preheader.max_chars) : "");
    setBody(s.slots?.body ? String(s.slots.body.max_chars) : "");
    setProducts(String(s.slots?.products ?? 3));
  }, [res.data]);
  const slot = (v: string) => (v.trim() === "" ? null : { max_chars: Number(v) });
  const save = useAction(async () => {
    setSaved(false);
    const s: Settings = {
      brand_voice: { descriptors: lines(descriptors), writing_rules: lines(rules) },
      language: language.trim(),
      sign_off: signOff,
      slots: { subject: slot(subject), preheader: slot(preheader), body: slot(body), products: Number(products) },
    };
    res.setData(await call<Settings>("PUT", "/settings", s));
    setSaved(true);
  });
  const field = (id: string, label: string, value: string, set: (v: string) => void, help?: string, type = "text") => (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} type={type} value={value} onInput={(e) => set((e.target as HTMLInputElement).value)} aria-describedby={help ? `${id}-help` : undefined} />
      {help && <p id={`${id}-help`} class="help">{help}</p>}
    </div>
  );
  return (
    <Page title="Settings">
      <ProblemMessage error={res.error} />
      {!res.data && !res.error && <p role="status">Loading…</p>}
      {res.data && (
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save.run();
        }}
      >
        <fieldset>
          <legend>Brand voice</legend>
          {field("descriptors", "Voice descriptors", descriptors, setDescriptors, "Comma separated, e.g. warm, outdoorsy.")}
          <div class="field">
            <label for="rules">Writing rules</label>
            <textarea id="rules" rows={3} value={rules} onInput={(e) => setRules((e.target as HTMLTextAreaElement).value)} aria-describedby="rules-help" />
            <p id="rules-help" class="help">One rule a line, e.g. no exclamation marks.</p>
          </div>
          {field("language", "Language", language, setLanguage, "BCP-47 tag such as en or pt-BR.")}
          {field("sign-off", "Sign-off", signOff, setSignOff)}
        </fieldset>
        <fieldset>
          <legend>Slots (most characters; empty: not written)</legend>
          {field("slot-subject", "Subject", subject, setSubject, undefined, "number")}
          {field("slot-preheader", "Preheader", preheader, setPreheader, undefined, "number")}
          {field("slot-body", "Body", body, setBody, undefined, "number")}
          {field("slot-products", "Recommended products", products, setProducts, "0 to 3.", "number")}
        </fieldset>
        <ProblemMessage error={save.error} id="settings-error" />
        <button type="submit" disabled={save.busy}>
          Save settings
        </button>
        <span role="status">{saved ? "Settings saved." : ""}</span>
      </form>
      )}
    </Page>
  );
}
