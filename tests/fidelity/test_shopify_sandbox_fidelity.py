"""Shopify sandbox fidelity for bulk operations: the sandbox's answers to `bulkOperationCancel`,
`bulkOperation(id:)` and `bulkOperations` have the shape the pinned Admin API 2026-10
introspection gives them (every selected field present, nullability, enum values, scalar kinds,
nothing extra), for the production documents and for documents selecting every field. The
state transitions follow Shopify's documented and captured behaviour: a running operation
answers CANCELING and becomes CANCELED; an unknown one is a user error on `id`; a finished one
is returned with a user error whose `field` is null.

Run: SANDBOX_URL=http://127.0.0.1:PORT pytest tests/fidelity -k shopify (or build
`target/debug/sandbox` and let the fixture start it). SPECS_DIR overrides where the
introspection is read.
"""

import json
import os
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    build_client_schema,
    parse,
    validate,
)
from graphql.language import FieldNode, InlineFragmentNode, OperationDefinitionNode

REPO = Path(__file__).resolve().parents[2]
QUERIES = REPO / "crates" / "shared" / "src" / "shopify" / "queries"
API_VERSION = "2026-10"
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-shopify-client-secret"

EVERY_BULK_FIELD = """
  id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url
  partialDataUrl query type
"""
CANCEL_EVERYTHING = (
    "mutation Cancel($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { "
    + EVERY_BULK_FIELD
    + " } userErrors { field message } } }"
)
STATUS_EVERYTHING = "query Status($id: ID!) { bulkOperation(id: $id) { " + EVERY_BULK_FIELD + " } }"
LIST_EVERYTHING = (
    'query List { bulkOperations(first: 5, query: "status:running") { edges { cursor node { '
    + EVERY_BULK_FIELD
    + " } } nodes { id status } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
)


def specs_dir() -> Path:
    return Path(os.environ.get("SPECS_DIR") or (REPO.parent / "shared" / "specs"))


@pytest.fixture(scope="module")
def schema():
    path = specs_dir() / "shopify-admin-2026-10.json"
    if not path.exists():
        pytest.fail(f"Shopify introspection not found at {path} (set SPECS_DIR)")
    # assume_valid: Shopify's schema has a deprecation inconsistency graphql-core rejects otherwise.
    return build_client_schema(json.loads(path.read_text())["data"], assume_valid=True)


# ---------- response ⟷ schema conformance ----------


def _fields(selection_set, type_name):
    """The field nodes of a selection set for an object of `type_name` (inline fragments merged)."""
    out = []
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            out.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            cond = sel.type_condition.name.value if sel.type_condition else type_name
            if cond == type_name:
                out.extend(_fields(sel.selection_set, type_name))
    return out


def _check(gql_type, value, node, path, problems):
    if isinstance(gql_type, GraphQLNonNull):
        if value is None:
            problems.append(f"{path}: null for non-null {gql_type}")
            return
        gql_type = gql_type.of_type
    if value is None:
        return
    if isinstance(gql_type, GraphQLList):
        if not isinstance(value, list):
            problems.append(f"{path}: {value!r} is not a list")
            return
        for i, item in enumerate(value):
            _check(gql_type.of_type, item, node, f"{path}[{i}]", problems)
    elif isinstance(gql_type, GraphQLEnumType):
        if value not in gql_type.values:
            problems.append(f"{path}: {value!r} is not a {gql_type.name}")
    elif isinstance(gql_type, GraphQLScalarType):
        kinds = {
            "Boolean": (bool,),
            "Int": (int,),
            "Float": (int, float),
        }.get(gql_type.name, (str,))  # String, ID and Shopify's custom scalars travel as strings
        if not isinstance(value, kinds) or (gql_type.name == "Int" and isinstance(value, bool)):
            problems.append(f"{path}: {value!r} is not a {gql_type.name}")
    elif isinstance(gql_type, GraphQLObjectType):
        if not isinstance(value, dict):
            problems.append(f"{path}: {value!r} is not a {gql_type.name} object")
            return
        _check_object(gql_type, value, node.selection_set, path, problems)
    else:
        problems.append(f"{path}: unexpected type {gql_type}")


def _check_object(obj_type, value, selection_set, path, problems):
    selected = _fields(selection_set, obj_type.name)
    keys = {(f.alias or f.name).value for f in selected}
    extra = set(value) - keys
    if extra:
        problems.append(f"{path}: unselected keys {sorted(extra)}")
    for field in selected:
        key = (field.alias or field.name).value
        if key not in value:
            problems.append(f"{path}.{key}: missing")
            continue
        if field.name.value == "__typename":
            continue
        field_def = obj_type.fields.get(field.name.value)
        if field_def is None:
            problems.append(f"{path}.{key}: no such field on {obj_type.name}")
            continue
        _check(field_def.type, value[key], field, f"{path}.{key}", problems)


def conformance_problems(schema, document, data):
    """Where `data` (a response's `data`) departs from what `document` selects in `schema`."""
    doc = parse(document)
    errors = validate(schema, doc)
    if errors:
        return [f"document: {e.message}" for e in errors]
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    root = schema.mutation_type if op.operation.value == "mutation" else schema.query_type
    problems = []
    if not isinstance(data, dict):
        return [f"data: {data!r} is not an object"]
    _check_object(root, data, op.selection_set, "data", problems)
    return problems


# ---------- talking to the sandbox's Shopify ----------


class Shop:
    def __init__(self, base, domain, token):
        self.base, self.domain, self.token = base, domain, token

    def gql(self, query, variables=None):
        resp = requests.post(
            f"{self.base}/shopify/{self.domain}/admin/api/{API_VERSION}/graphql.json",
            headers={"X-Shopify-Access-Token": self.token},
            json={"query": query, "variables": variables or {}},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert "errors" not in body, body
        return body["data"]

    def control(self, what, body):
        resp = requests.post(f"{self.base}/_sandbox/shopify/{self.domain}/{what}", json=body, timeout=10)
        assert resp.ok, resp.text

    def start_export(self):
        data = self.gql(
            (QUERIES / "bulk_run.graphql").read_text(),
            {"query": (QUERIES / "bulk_products.graphql").read_text()},
        )
        payload = data["bulkOperationRunQuery"]
        assert payload["userErrors"] == [], payload
        return payload["bulkOperation"]["id"]

    def wait_for(self, op_id, status):
        op = None
        for _ in range(200):
            op = self.gql(STATUS_EVERYTHING, {"id": op_id})["bulkOperation"]
            if op["status"] == status:
                return op
            time.sleep(0.05)
        pytest.fail(f"{op_id} never became {status}: {op}")


@pytest.fixture
def shop(sandbox_url):
    domain = f"fidelity-{uuid.uuid4().hex[:8]}.myshopify.com"
    resp = requests.post(
        f"{sandbox_url}/_sandbox/shopify/shops",
        json={"shop": domain, "products": 20, "seed": 3},
        timeout=10,
    )
    assert resp.ok, resp.text
    admin = f"{sandbox_url}/shopify/{domain}/admin"
    authorize = requests.get(
        f"{admin}/oauth/authorize",
        params={
            "client_id": CLIENT_ID,
            "scope": "read_products",
            "redirect_uri": "https://app.example/cb",
            "state": "s",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert authorize.status_code == 302
    code = parse_qs(urlparse(authorize.headers["location"]).query)["code"][0]
    token = requests.post(
        f"{admin}/oauth/access_token",
        json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code, "expiring": 1},
        timeout=10,
    ).json()["access_token"]
    return Shop(sandbox_url, domain, token)


# ---------- the checks ----------


def test_the_cancel_and_running_documents_exist():
    for name in ["bulk_cancel.graphql", "bulk_running.graphql"]:
        assert (QUERIES / name).exists(), name


def test_canceling_a_running_operation_matches_the_schema_and_ends_canceled(schema, shop):
    shop.control("bulk-settings", {"run_secs": 60})
    op_id = shop.start_export()
    shop.wait_for(op_id, "RUNNING")

    data = shop.gql(CANCEL_EVERYTHING, {"id": op_id})
    assert conformance_problems(schema, CANCEL_EVERYTHING, data) == []
    payload = data["bulkOperationCancel"]
    assert payload["userErrors"] == []
    assert payload["bulkOperation"]["id"] == op_id
    assert payload["bulkOperation"]["status"] == "CANCELING"
    assert payload["bulkOperation"]["type"] == "QUERY"

    canceled = shop.wait_for(op_id, "CANCELED")
    assert conformance_problems(schema, STATUS_EVERYTHING, {"bulkOperation": canceled}) == []
    assert canceled["url"] is None
    assert canceled["completedAt"] is not None


def test_canceling_unknown_and_finished_operations_gives_schema_shaped_user_errors(schema, shop):
    data = shop.gql(CANCEL_EVERYTHING, {"id": "gid://shopify/BulkOperation/1"})
    assert conformance_problems(schema, CANCEL_EVERYTHING, data) == []
    assert data["bulkOperationCancel"] == {
        "bulkOperation": None,
        "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
    }

    op_id = shop.start_export()
    shop.wait_for(op_id, "COMPLETED")
    data = shop.gql(CANCEL_EVERYTHING, {"id": op_id})
    assert conformance_problems(schema, CANCEL_EVERYTHING, data) == []
    payload = data["bulkOperationCancel"]
    assert payload["bulkOperation"]["status"] == "COMPLETED"
    assert [e["field"] for e in payload["userErrors"]] == [None]


def test_the_production_cancel_and_running_documents_get_schema_shaped_answers(schema, shop):
    shop.control("bulk-settings", {"run_secs": 60})
    op_id = shop.start_export()
    shop.wait_for(op_id, "RUNNING")

    running = (QUERIES / "bulk_running.graphql").read_text()
    data = shop.gql(running)
    assert conformance_problems(schema, running, data) == []
    assert [n["id"] for n in data["bulkOperations"]["nodes"]] == [op_id]
    assert data["bulkOperations"]["nodes"][0]["query"] == (QUERIES / "bulk_products.graphql").read_text()

    cancel = (QUERIES / "bulk_cancel.graphql").read_text()
    data = shop.gql(cancel, {"id": op_id})
    assert conformance_problems(schema, cancel, data) == []
    assert data["bulkOperationCancel"]["bulkOperation"]["status"] == "CANCELING"


def test_the_bulk_operations_connection_matches_the_schema(schema, shop):
    shop.control("bulk-settings", {"run_secs": 60})
    first, second = shop.start_export(), shop.start_export()
    shop.wait_for(second, "RUNNING")
    shop.wait_for(first, "RUNNING")
    data = shop.gql(LIST_EVERYTHING)
    assert conformance_problems(schema, LIST_EVERYTHING, data) == []
    assert [e["node"]["id"] for e in data["bulkOperations"]["edges"]] == [second, first]


def test_the_conformance_check_catches_wrong_shapes(schema):
    good = {
        "bulkOperationCancel": {
            "bulkOperation": {"id": "gid://shopify/BulkOperation/1", "status": "CANCELING"},
            "userErrors": [],
        }
    }
    document = (QUERIES / "bulk_cancel.graphql").read_text()
    assert conformance_problems(schema, document, good) == []
    wrong_enum = json.loads(json.dumps(good))
    wrong_enum["bulkOperationCancel"]["bulkOperation"]["status"] = "STOPPED"
    missing_list = json.loads(json.dumps(good))
    missing_list["bulkOperationCancel"]["userErrors"] = None
    extra_key = json.loads(json.dumps(good))
    extra_key["bulkOperationCancel"]["userErrors"] = [{"field": None, "message": "x", "code": "INVALID"}]
    null_message = json.loads(json.dumps(good))
    null_message["bulkOperationCancel"]["userErrors"] = [{"field": ["id"], "message": None}]
    for bad in (wrong_enum, missing_list, extra_key, null_message):
        assert conformance_problems(schema, document, bad) != [], bad
