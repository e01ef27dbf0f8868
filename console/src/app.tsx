import { useEffect, useState } from "preact/hooks";
import { call, type Schemas } from "./api";
import { completeSignIn, onAuthChange, signedIn, signIn, signOut, userEmail } from "./auth";
import { AccountPage } from "./pages/account";
import { CatalogPageView } from "./pages/catalog";
import { ConnectionsPage } from "./pages/connections";
import { FlowsPage } from "./pages/flows";
import { PreviewPage } from "./pages/preview";
import { RunPage, RunsPage } from "./pages/runs";
import { SettingsPage } from "./pages/settings";
import { navigate, useLocation } from "./router";
import { Page, ProblemMessage, useAction, useResource, when } from "./ui";

const NAV: [string, string][] = [
  ["/", "Dashboard"],
  ["/connections", "Connections"],
  ["/catalog", "Catalog"],
  ["/settings", "Settings"],
  ["/preview", "Preview"],
  ["/runs", "Runs"],
  ["/flows", "Flows"],
  ["/account", "Account"],
];

export function App() {
  const { path, query } = useLocation();
  const [, force] = useState(0);
  useEffect(() => onAuthChange(() => force((n) => n + 1)), []);

  if (path === "/auth/callback") return <Callback search={location.search} />;
  const isIn = signedIn();
  if (!isIn && path === "/") return <Shell><Landing /></Shell>;
  if (!isIn) {
    // Tokens live in memory only: a reload or a return from Shopify signs in again, silently
    // when the managed login still has its session.
    void signIn(path + location.search);
    return <Shell><p role="status">Signing in…</p></Shell>;
  }
  let page;
  const run = path.match(/^\/runs\/([^/]+)$/);
  if (path === "/") page = <Dashboard />;
  else if (path === "/install") page = <Install shop={query.get("shop")} />;
  else if (path === "/connections") page = <ConnectionsPage />;
  else if (path === "/catalog") page = <CatalogPageView />;
  else if (path === "/settings") page = <SettingsPage />;
  else if (path === "/preview") page = <PreviewPage />;
  else if (path === "/runs") page = <RunsPage />;
  else if (run) page = <RunPage key={run[1]} id={decodeURIComponent(run[1])} />;
  else if (path === "/flows") page = <FlowsPage />;
  else if (path === "/account") page = <AccountPage />;
  else page = <Page title="Not found"><p>There is no such page. <a href="/">Go to the dashboard</a>.</p></Page>;
  return <Shell nav={path}>{page}</Shell>;
}

function Shell({ nav, children }: { nav?: string; children: preact.ComponentChildren }) {
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <span class="brand">SendPersonal</span>
        {nav !== undefined && (
          <>
            <nav aria-label="Main">
              <ul>
                {NAV.map(([href, label]) => (
                  <li key={href}>
                    <a href={href} aria-current={nav === href || (href !== "/" && nav.startsWith(href + "/")) ? "page" : undefined}>
                      {label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
            <span class="user">{userEmail()}</span>
            <button type="button" onClick={() => void signOut()}>
              Sign out
            </button>
          </>
        )}
      </header>
      <main id="main">{children}</main>
    </>
  );
}

function Landing() {
  return (
    <Page title="Personal emails for every subscriber">
      <p>
        SendPersonal writes a personal email for every subscriber of your Shopify store, in your brand's voice, and hands it to Klaviyo.
      </p>
      <button type="button" onClick={() => void signIn("/")}>
        Sign in
      </button>
      <p class="help">New here? Choose "Sign up" on the sign-in page.</p>
    </Page>
  );
}

function Callback({ search }: { search: string }) {
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    completeSignIn(search).then((to) => navigate(to, true), setError);
  }, [search]);
  return (
    <Shell>
      <Page title="Signing in">
        {error ? (
          <>
            <ProblemMessage error={error} />
            <button type="button" onClick={() => void signIn("/")}>
              Sign in again
            </button>
          </>
        ) : (
          <p role="status">Finishing sign-in…</p>
        )}
      </Page>
    </Shell>
  );
}

/** Shopify's app URL sends the merchant here (after verifying Shopify's HMAC): start OAuth. */
function Install({ shop }: { shop: string | null }) {
  const start = useAction(async () => {
    const r = await call<Schemas["ShopifyAuthorize"]>("POST", "/connections/shopify", { shop });
    location.assign(r.authorize_url);
  });
  useEffect(() => {
    if (shop) void start.run();
  }, [shop]);
  return (
    <Page title="Installing on Shopify">
      {!shop && <p class="problem" role="alert">No shop was given. Install from the Connections page.</p>}
      {shop && !start.error && <p role="status">Sending you to Shopify to approve {shop}…</p>}
      <ProblemMessage error={start.error} />
    </Page>
  );
}

function Dashboard() {
  const conns = useResource<Schemas["ConnectionsView"]>("/connections");
  const runs = useResource<Schemas["RunList"]>("/runs");
  const k = conns.data?.klaviyo;
  const s = conns.data?.shopify;
  const last = runs.data?.runs[0];
  return (
    <Page title="Dashboard">
      <ProblemMessage error={conns.error} />
      <ul class="checklist">
        <li>
          Klaviyo: {k ? `${k.status} (${k.account_name})` : "not connected"} · <a href="/connections">Connections</a>
        </li>
        <li>
          Shopify: {s ? `${s.status}, ${s.catalog_size} products, last sync ${when(s.last_sync_at)}` : "not installed"}
        </li>
        <li>Last run: {last ? <a href={`/runs/${encodeURIComponent(last.run_id)}`}>{last.state.replace(/_/g, " ")}</a> : "none yet"} · <a href="/runs">Runs</a></li>
      </ul>
    </Page>
  );
}
