import { useState } from "preact/hooks";
import { call, type Schemas } from "../api";
import { useLocation } from "../router";
import { Page, ProblemMessage, useAction, useResource, when } from "../ui";

type Connections = Schemas["ConnectionsView"];

export function ConnectionsPage() {
  const { query } = useLocation();
  const conns = useResource<Connections>("/connections");
  const outcome = query.get("shopify");
  return (
    <Page title="Connections">
      {outcome === "connected" && (
        <p class="notice" role="status">
          Shopify is connected. The first catalog sync has started.
        </p>
      )}
      {outcome === "error" && (
        <div class="problem" role="alert">
          <strong>Shopify was not connected.</strong> <span>{shopifyError(query.get("type"))}</span>
        </div>
      )}
      <ProblemMessage error={conns.error} />
      <div class="cards">
        <KlaviyoCard view={conns.data?.klaviyo ?? null} loaded={!!conns.data} onChange={conns.reload} />
        <ShopifyCard view={conns.data?.shopify ?? null} loaded={!!conns.data} onChange={conns.reload} />
      </div>
    </Page>
  );
}

function shopifyError(type: string | null): string {
  switch (type) {
    case "invalid-oauth-state":
      return "The install link was not started from this browser, or it expired. Start the install again here.";
    case "invalid-oauth-signature":
      return "Shopify's answer could not be verified. Start the install again.";
    default:
      return `The install did not finish${type ? ` (${type})` : ""}. Start it again.`;
  }
}

function KlaviyoCard(props: { view: Schemas["KlaviyoConnectionView"] | null; loaded: boolean; onChange: () => void }) {
  const [key, setKey] = useState("");
  const save = useAction(async () => {
    await call("PUT", "/connections/klaviyo", { api_key: key });
    // The key is never shown again, not even in the field.
    setKey("");
    props.onChange();
  });
  const disconnect = useAction(async () => {
    await call("DELETE", "/connections/klaviyo");
    props.onChange();
  });
  const v = props.view;
  return (
    <section class="card" aria-labelledby="klaviyo-h">
      <h2 id="klaviyo-h">Klaviyo</h2>
      {v ? (
        <dl>
          <dt>Status</dt>
          <dd data-testid="klaviyo-status">{v.status}</dd>
          <dt>Account</dt>
          <dd>{v.account_name}</dd>
          <dt>Connected</dt>
          <dd>{when(v.connected_at)}</dd>
        </dl>
      ) : (
        props.loaded && <p>Not connected.</p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void save.run();
        }}
      >
        <label for="klaviyo-key">{v ? "Replace the private API key" : "Private API key"}</label>
        <input
          id="klaviyo-key"
          name="api_key"
          type="password"
          autocomplete="off"
          required
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          aria-describedby="klaviyo-key-help klaviyo-key-error"
          aria-invalid={save.error ? "true" : undefined}
        />
        <p id="klaviyo-key-help" class="help">
          Create a private key in Klaviyo (Settings → API keys) with read access to profiles, lists,
          segments and events and write access to profiles. We keep it encrypted and never show it again.
        </p>
        <ProblemMessage error={save.error} id="klaviyo-key-error" />
        <button type="submit" disabled={save.busy}>
          {save.busy ? "Checking…" : "Connect Klaviyo"}
        </button>
      </form>
      {v && (
        <div class="actions">
          <button type="button" class="danger" disabled={disconnect.busy} onClick={() => void disconnect.run()}>
            Disconnect Klaviyo
          </button>
          <ProblemMessage error={disconnect.error} />
        </div>
      )}
    </section>
  );
}

function ShopifyCard(props: { view: Schemas["ShopifyConnectionView"] | null; loaded: boolean; onChange: () => void }) {
  const [shop, setShop] = useState("");
  const install = useAction(async (s: string) => {
    const r = await call<Schemas["ShopifyAuthorize"]>("POST", "/connections/shopify", { shop: s });
    // A top-level navigation, so the API's state cookie is first-party.
    location.assign(r.authorize_url);
  });
  const sync = useAction(async () => {
    await call("POST", "/catalog/sync");
    props.onChange();
  });
  const disconnect = useAction(async () => {
    await call("DELETE", "/connections/shopify");
    props.onChange();
  });
  const v = props.view;
  return (
    <section class="card" aria-labelledby="shopify-h">
      <h2 id="shopify-h">Shopify</h2>
      {v ? (
        <dl>
          <dt>Status</dt>
          <dd data-testid="shopify-status">{v.status}</dd>
          <dt>Shop</dt>
          <dd>{v.shop}</dd>
          <dt>Connected</dt>
          <dd>{when(v.connected_at)}</dd>
          <dt>Last sync</dt>
          <dd>{v.sync_in_progress ? `running (${v.sync_in_progress.products_read} products read)` : when(v.last_sync_at)}</dd>
          <dt>Catalog size</dt>
          <dd data-testid="catalog-size">{v.catalog_size} products</dd>
          <dt>Last error</dt>
          <dd>{v.last_sync_error ?? "none"}</dd>
        </dl>
      ) : (
        props.loaded && <p>Not installed.</p>
      )}
      {!v && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void install.run(shop.trim());
          }}
        >
          <label for="shop">Shop domain</label>
          <input
            id="shop"
            name="shop"
            placeholder="your-store.myshopify.com"
            required
            value={shop}
            onInput={(e) => setShop((e.target as HTMLInputElement).value)}
            aria-describedby="shop-error"
            aria-invalid={install.error ? "true" : undefined}
          />
          <ProblemMessage error={install.error} id="shop-error" />
          <button type="submit" disabled={install.busy}>
            Install on Shopify
          </button>
        </form>
      )}
      {v && (
        <div class="actions">
          <button type="button" disabled={sync.busy} onClick={() => void sync.run()}>
            Re-sync catalog
          </button>
          <ProblemMessage error={sync.error} />
          <button type="button" class="danger" disabled={disconnect.busy} onClick={() => void disconnect.run()}>
            Disconnect Shopify
          </button>
          <ProblemMessage error={disconnect.error} />
        </div>
      )}
    </section>
  );
}
