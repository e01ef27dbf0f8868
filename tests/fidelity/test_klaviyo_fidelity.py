"""Klaviyo fidelity: every route the sandbox serves exists in Klaviyo's OpenAPI spec with the
same method, and real responses (success and error) validate against the spec's schemas.

Run: SANDBOX_URL=http://127.0.0.1:PORT pytest tests/fidelity  (or build `target/debug/sandbox`
and let the fixture start it). SPECS_DIR overrides where klaviyo-openapi-stable.json is read.
"""

import json
import time
import uuid

import jsonschema
import pytest
import requests

REVISION = "2026-07-15"
JSON_API = "application/vnd.api+json"


# ---------- OpenAPI → JSON Schema ----------


def _lookup(spec, ref):
    node = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def inline_refs(spec, node, stack=()):
    """Returns `node` with every `$ref` replaced by its target; recursive refs become {}."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in stack:
                return {}
            return inline_refs(spec, _lookup(spec, ref), stack + (ref,))
        return {k: inline_refs(spec, v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(spec, v, stack) for v in node]
    return node


def to_json_schema(node):
    """Translates OpenAPI 3.0 `nullable` (unknown to JSON Schema) into explicit null types."""
    if isinstance(node, list):
        return [to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example", "discriminator")}
    if node.get("nullable"):
        if "type" in out:
            t = out["type"]
            out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def schema_for(spec, method, path, status_prefix):
    responses = spec["paths"][path][method.lower()]["responses"]
    for code, resp in responses.items():
        if code.upper().startswith(status_prefix):
            resp = inline_refs(spec, resp)
            content = resp.get("content", {})
            media = content.get(JSON_API) or next(iter(content.values()), None)
            if media is None:
                return code, None
            return code, to_json_schema(media["schema"])
    return None, None


def request_schema(spec, method, path):
    op = spec["paths"][path][method.lower()]
    body = op.get("requestBody")
    if not body:
        return None
    body = inline_refs(spec, body)
    media = body["content"].get(JSON_API) or next(iter(body["content"].values()))
    return to_json_schema(media["schema"])


def validation_errors(schema, instance):
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(instance)]


# ---------- HTTP helpers ----------


def headers(key):
    h = {"revision": REVISION, "Accept": JSON_API, "Content-Type": JSON_API}
    if key is not None:
        h["Authorization"] = f"Klaviyo-API-Key {key}"
    return h


def call(base, key, method, url, body=None, retry_throttled=True):
    """One request; a 429 is retried after Retry-After so real limits don't flake the suite."""
    for _ in range(5):
        resp = requests.request(
            method,
            url if url.startswith("http") else base + url,
            headers=headers(key),
            data=None if body is None else json.dumps(body),
            timeout=30,
        )
        if resp.status_code != 429 or not retry_throttled:
            return resp
        time.sleep(int(resp.headers.get("Retry-After", "1")))
    return resp


@pytest.fixture(scope="session")
def routes(sandbox_url):
    resp = requests.get(f"{sandbox_url}/_sandbox/routes", timeout=5)
    resp.raise_for_status()
    served = resp.json()
    assert served, "sandbox reports no Klaviyo routes"
    return [(r["method"].upper(), r["path"]) for r in served]


@pytest.fixture(scope="session")
def ids(sandbox_url, full_key):
    """Real ids discovered through the list endpoints."""
    def first_id(url):
        resp = call(sandbox_url, full_key, "GET", url)
        assert resp.status_code == 200, f"GET {url}: {resp.status_code} {resp.text[:200]}"
        return resp.json()["data"][0]["id"]

    return {
        "list": first_id("/api/lists"),
        "segment": first_id("/api/segments"),
        "profile": first_id("/api/profiles?page[size]=1"),
    }


@pytest.fixture(scope="session")
def recipes(sandbox_url, full_key, ids):
    """(method, spec path) → callable making the real request for that route."""
    job = {}

    def bulk_job_body():
        return {
            "data": {
                "type": "profile-bulk-import-job",
                "attributes": {
                    "profiles": {
                        "data": [
                            {
                                "type": "profile",
                                "attributes": {
                                    "email": f"fidelity-{uuid.uuid4().hex[:8]}@example.com",
                                    "properties": {"sp_subject": "Hello"},
                                },
                            },
                            {"type": "profile", "attributes": {"first_name": "No identifier"}},
                        ]
                    }
                },
                "relationships": {"lists": {"data": [{"type": "list", "id": ids["list"]}]}},
            }
        }

    def patch_body():
        return {
            "data": {
                "type": "profile",
                "id": ids["profile"],
                "attributes": {"properties": {"sp_subject": "Fidelity", "sp_old": None}},
                "meta": {"patch_properties": {"unset": ["sp_older"]}},
            }
        }

    def job_id():
        if "id" not in job:
            resp = call(sandbox_url, full_key, "POST", "/api/profile-bulk-import-jobs", bulk_job_body())
            assert resp.status_code == 202, resp.text[:300]
            job["id"] = resp.json()["data"]["id"]
        return job["id"]

    def get(url):
        return lambda: ("GET", url(), None)

    return {
        ("GET", "/api/accounts"): get(lambda: "/api/accounts"),
        ("GET", "/api/lists"): get(lambda: "/api/lists?additional-fields[list]=profile_count"),
        ("GET", "/api/segments"): get(lambda: "/api/segments"),
        ("GET", "/api/lists/{id}/relationships/profiles"): get(
            lambda: f"/api/lists/{ids['list']}/relationships/profiles?page[size]=5"
        ),
        ("GET", "/api/segments/{id}/relationships/profiles"): get(
            lambda: f"/api/segments/{ids['segment']}/relationships/profiles?page[size]=5"
        ),
        ("GET", "/api/profiles"): get(
            lambda: "/api/profiles?page[size]=20&additional-fields[profile]=predictive_analytics,subscriptions"
        ),
        ("GET", "/api/profiles/{id}"): get(
            lambda: f"/api/profiles/{ids['profile']}?additional-fields[profile]=predictive_analytics"
        ),
        ("PATCH", "/api/profiles/{id}"): lambda: ("PATCH", f"/api/profiles/{ids['profile']}", patch_body()),
        ("GET", "/api/metrics"): get(lambda: "/api/metrics"),
        ("GET", "/api/events"): get(lambda: "/api/events?page[size]=50&sort=-datetime"),
        ("POST", "/api/profile-bulk-import-jobs"): lambda: ("POST", "/api/profile-bulk-import-jobs", bulk_job_body()),
        ("GET", "/api/profile-bulk-import-jobs"): get(
            lambda: '/api/profile-bulk-import-jobs?filter=any(status,["queued","processing"])&sort=-created_at&page[size]=100'
        ),
        ("GET", "/api/profile-bulk-import-jobs/{job_id}"): get(lambda: f"/api/profile-bulk-import-jobs/{job_id()}"),
        ("GET", "/api/profile-bulk-import-jobs/{id}/import-errors"): get(
            lambda: f"/api/profile-bulk-import-jobs/{job_id()}/import-errors"
        ),
    }


# ---------- tests ----------


def test_every_served_route_exists_in_the_spec_with_the_same_method(routes, spec):
    missing = [
        f"{method} {path}"
        for method, path in routes
        if path not in spec["paths"] or method.lower() not in spec["paths"][path]
    ]
    assert not missing, f"routes not in klaviyo-openapi-stable.json: {missing}"


def test_every_route_has_a_request_recipe(routes, recipes):
    assert not [r for r in routes if r not in recipes], "add a recipe for new routes"


def test_success_responses_validate_against_the_spec(routes, recipes, spec, sandbox_url, full_key):
    failures = []
    for method, path in routes:
        verb, url, body = recipes[(method, path)]()
        if body is not None:
            req_schema = request_schema(spec, method, path)
            if req_schema is not None:
                for err in validation_errors(req_schema, body):
                    failures.append(f"{method} {path} request body (test bug): {err}")
        resp = call(sandbox_url, full_key, verb, url, body)
        code, schema = schema_for(spec, method, path, "2")
        if str(resp.status_code) != code:
            failures.append(f"{method} {path}: status {resp.status_code}, spec says {code}: {resp.text[:200]}")
            continue
        if not resp.headers.get("Content-Type", "").startswith(JSON_API):
            failures.append(f"{method} {path}: content type {resp.headers.get('Content-Type')}")
        for err in validation_errors(schema, resp.json())[:5]:
            failures.append(f"{method} {path}: {err}")
        for h in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
            if h not in resp.headers:
                failures.append(f"{method} {path}: missing {h} header")
    assert not failures, "\n".join(failures)


def _check_error(spec, method, path, resp, status, code, failures):
    if resp.status_code != status:
        failures.append(f"{method} {path}: expected {status}, got {resp.status_code}: {resp.text[:200]}")
        return
    _, schema = schema_for(spec, method, path, "4")
    if schema is None:
        return
    body = resp.json()
    for err in validation_errors(schema, body)[:5]:
        failures.append(f"{method} {path} ({status}): {err}")
    if body.get("errors", [{}])[0].get("code") != code:
        failures.append(f"{method} {path}: error code {body['errors'][0].get('code')!r}, expected {code!r}")


def test_bad_key_gives_spec_shaped_401_on_every_route(routes, recipes, spec, sandbox_url):
    failures = []
    for method, path in routes:
        verb, url, body = recipes[(method, path)]()
        resp = call(sandbox_url, "pk_not_a_real_key", verb, url, body, retry_throttled=False)
        _check_error(spec, method, path, resp, 401, "authentication_failed", failures)
        resp = requests.request(verb, sandbox_url + url, headers=headers(None), timeout=10)
        _check_error(spec, method, path, resp, 401, "not_authenticated", failures)
    assert not failures, "\n".join(failures)


def test_missing_scope_gives_spec_shaped_403_on_every_route(routes, recipes, spec, sandbox_url):
    created = requests.post(
        f"{sandbox_url}/_sandbox/klaviyo/keys", json={"scopes": [], "account": "default"}, timeout=5
    )
    assert created.status_code in (200, 201)
    no_scopes = created.json()["key"]
    failures = []
    for method, path in routes:
        verb, url, body = recipes[(method, path)]()
        resp = call(sandbox_url, no_scopes, verb, url, body, retry_throttled=False)
        _check_error(spec, method, path, resp, 403, "permission_denied", failures)
    assert not failures, "\n".join(failures)


def test_zz_throttled_response_is_spec_shaped_429_with_retry_after(spec, sandbox_url, full_key):
    # Named to run last: it exhausts the XS tier of /api/accounts for the session.
    resp = None
    for _ in range(600):
        resp = call(sandbox_url, full_key, "GET", "/api/accounts", retry_throttled=False)
        if resp.status_code == 429:
            break
    assert resp is not None and resp.status_code == 429, "never throttled"
    assert resp.headers.get("Retry-After", "").isdigit(), resp.headers
    assert "RateLimit-Limit" not in resp.headers
    failures = []
    _check_error(spec, "GET", "/api/accounts", resp, 429, "throttled", failures)
    assert not failures, "\n".join(failures)
