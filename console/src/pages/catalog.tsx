import { useState } from "preact/hooks";
import { ApiProblem } from "../api";
import { Page, ProblemMessage, useResource, when } from "../ui";

/** GET /catalog (typed here until its schema is in openapi.json). */
interface CatalogPage {
  products: CatalogItem[];
  next_cursor?: string | null;
  catalog_size: number;
  last_sync_at?: string | null;
}
interface CatalogItem {
  id: string;
  title: string;
  url: string;
  price: unknown;
  product_type?: string;
  vendor?: string;
  available?: boolean;
  eligible?: boolean;
  ineligible_reasons?: string[];
}

export function money(m: unknown): string {
  if (m == null) return "";
  if (typeof m === "string" || typeof m === "number") return String(m);
  const o = m as Record<string, unknown>;
  const amount = o.amount ?? o.value ?? "";
  const cur = o.currency_code ?? o.currency ?? o.currencyCode ?? "";
  return `${amount} ${cur}`.trim();
}

export function CatalogPageView() {
  const [cursor, setCursor] = useState<string[]>([]);
  const at = cursor[cursor.length - 1];
  const page = useResource<CatalogPage>(`/catalog?limit=25${at ? `&cursor=${encodeURIComponent(at)}` : ""}`);
  const missing = page.error instanceof ApiProblem && page.error.problem.status === 404;
  return (
    <Page title="Catalog">
      <p>Your store's products as a recommendation sees them: only eligible products are ever picked.</p>
      {missing ? (
        <p class="problem" role="alert">
          This API does not offer the catalog browser yet (GET /catalog answered 404).
        </p>
      ) : (
        <ProblemMessage error={page.error} />
      )}
      {page.data && (
        <>
          <p data-testid="catalog-summary">
            {page.data.catalog_size} products, last synced {when(page.data.last_sync_at)}.
          </p>
          <table>
            <caption class="visually-hidden">Cached products</caption>
            <thead>
              <tr>
                <th scope="col">Product</th>
                <th scope="col">Type</th>
                <th scope="col">Price</th>
                <th scope="col">Available</th>
                <th scope="col">Recommendable</th>
              </tr>
            </thead>
            <tbody>
              {page.data.products.map((p) => (
                <tr key={p.id}>
                  <td>
                    <a href={p.url} target="_blank" rel="noopener noreferrer">
                      {p.title}
                    </a>
                  </td>
                  <td>{p.product_type}</td>
                  <td>{money(p.price)}</td>
                  <td>{p.available === false ? "no" : "yes"}</td>
                  <td>{p.eligible === false ? `no: ${(p.ineligible_reasons ?? []).map((r) => r.replace(/_/g, " ")).join(", ")}` : "yes"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav aria-label="Catalog pages" class="actions">
            <button type="button" disabled={cursor.length === 0} onClick={() => setCursor(cursor.slice(0, -1))}>
              Previous page
            </button>
            <button
              type="button"
              disabled={!page.data.next_cursor}
              onClick={() => setCursor([...cursor, page.data!.next_cursor!])}
            >
              Next page
            </button>
          </nav>
        </>
      )}
    </Page>
  );
}
