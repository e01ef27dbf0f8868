import { useState } from "preact/hooks";
import { call, get } from "../api";
import { signOut, userEmail } from "../auth";
import { Page, ProblemMessage, useAction } from "../ui";

export function AccountPage() {
  const [confirm, setConfirm] = useState("");
  const exp = useAction(async () => {
    const data = await get<unknown>("/account/export");
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = "sendpersonal-export.json";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
  const del = useAction(async () => {
    await call("DELETE", "/account");
    await signOut();
  });
  return (
    <Page title="Account">
      <p>Signed in as {userEmail() ?? "you"}.</p>
      <section aria-labelledby="export-h">
        <h2 id="export-h">Export</h2>
        <p>Everything we hold about your account, as JSON. Keys and tokens are listed, never shown.</p>
        <button type="button" disabled={exp.busy} onClick={() => void exp.run()}>
          Download export
        </button>
        <ProblemMessage error={exp.error} />
      </section>
      <section aria-labelledby="delete-h">
        <h2 id="delete-h">Delete account</h2>
        <p>
          Disconnects Klaviyo and Shopify, deletes the cached catalog, runs, settings and keys, and your sign-in. This cannot be undone.
        </p>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (confirm === "DELETE") void del.run();
          }}
        >
          <label for="delete-confirm">Type DELETE to confirm</label>
          <input id="delete-confirm" autocomplete="off" value={confirm} onInput={(e) => setConfirm((e.target as HTMLInputElement).value)} />
          <ProblemMessage error={del.error} />
          <button type="submit" class="danger" disabled={confirm !== "DELETE" || del.busy}>
            Delete my account
          </button>
        </form>
      </section>
    </Page>
  );
}
