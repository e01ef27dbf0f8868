"""Every GraphQL document production sends to Shopify (crates/shared/src/shopify/queries/*.graphql)
is valid against the pinned Admin API 2026-10 introspection and needs no access scope beyond
`read_products`.

Scopes come from the introspection file's top-level `offline_scopes.items`: entries of type
"field" ({typeName, fieldName, offlineScopes}) and of type "type" ({typeName, offlineScopes}).
A selection is allowed when every field it touches, the named type each field returns, and every
fragment type condition either needs no scope or accepts `read_products` among its alternatives.
"""

import json
import os
import re
from pathlib import Path

import pytest
from graphql import (
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    build_client_schema,
    get_named_type,
    parse,
    validate,
    visit,
)
from graphql.language import Visitor

REPO = Path(__file__).resolve().parents[2]
SHOPIFY_SRC = REPO / "crates" / "shared" / "src" / "shopify"
QUERIES = SHOPIFY_SRC / "queries"
GRANTED = "read_products"


def specs_dir() -> Path:
    return Path(os.environ.get("SPECS_DIR") or (REPO.parent / "shared" / "specs"))


@pytest.fixture(scope="module")
def introspection() -> dict:
    path = specs_dir() / "shopify-admin-2026-10.json"
    if not path.exists():
        pytest.fail(f"Shopify introspection not found at {path} (set SPECS_DIR)")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def schema(introspection) -> GraphQLSchema:
    # assume_valid: Shopify's schema has a deprecation inconsistency graphql-core rejects otherwise.
    return build_client_schema(introspection["data"], assume_valid=True)


@pytest.fixture(scope="module")
def scopes(introspection):
    items = introspection["offline_scopes"]["items"]
    fields, types = {}, {}
    for item in items:
        needed = [s for s in (item.get("offlineScopes") or []) if s]
        if item.get("type") == "field":
            fields[(item["typeName"], item["fieldName"])] = needed
        elif item.get("type") == "type":
            types[item["typeName"]] = needed
    return fields, types


def allowed(needed: list) -> bool:
    return not needed or GRANTED in needed


def scope_violations(schema: GraphQLSchema, scopes, document: str) -> list:
    """Fields / types in `document` that need a scope other than read_products."""
    fields, types = scopes
    type_info = TypeInfo(schema)
    found = []

    def check_type(name: str, where: str):
        needed = types.get(name, [])
        if not allowed(needed):
            found.append(f"{where}: type {name} needs {needed}")

    class ScopeVisitor(Visitor):
        def enter_field(self, node, *_):
            parent = type_info.get_parent_type()
            field_def = type_info.get_field_def()
            if parent is None or field_def is None:
                return
            name = node.name.value
            if name.startswith("__"):
                return
            needed = fields.get((parent.name, name), [])
            if not allowed(needed):
                found.append(f"{parent.name}.{name} needs {needed}")
            check_type(get_named_type(field_def.type).name, f"{parent.name}.{name}")

        def enter_inline_fragment(self, node, *_):
            if node.type_condition is not None:
                check_type(node.type_condition.name.value, "fragment")

        def enter_fragment_definition(self, node, *_):
            check_type(node.type_condition.name.value, f"fragment {node.name.value}")

    visit(parse(document), TypeInfoVisitor(type_info, ScopeVisitor()))
    return found


def documents():
    return sorted(QUERIES.glob("*.graphql"))


def test_the_production_documents_exist():
    names = {p.name for p in documents()}
    for expected in [
        "products_count.graphql",
        "products_page.graphql",
        "product_by_id.graphql",
        "bulk_products.graphql",
        "bulk_run.graphql",
        "bulk_status.graphql",
    ]:
        assert expected in names


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_document_is_valid_against_the_2026_10_schema(schema, path):
    errors = validate(schema, parse(path.read_text()))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_document_needs_only_read_products(schema, scopes, path):
    assert scope_violations(schema, scopes, path.read_text()) == []


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.name)
def test_document_is_included_by_the_rust_code(path):
    sources = "\n".join(p.read_text() for p in SHOPIFY_SRC.rglob("*.rs"))
    assert f'include_str!("queries/{path.name}")' in sources


def test_no_graphql_is_inlined_in_rust_sources():
    inline = re.compile(r'(r#*)?"\s*(query|mutation)\b\s*[A-Za-z_(\{]|"\s*\{\s*(products|product|bulkOperation)\b')
    offenders = []
    for path in SHOPIFY_SRC.rglob("*.rs"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//", 1)[0]
            if inline.search(code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_the_bulk_inner_query_is_a_query_with_no_first_argument(schema):
    text = (QUERIES / "bulk_products.graphql").read_text()
    doc = parse(text)
    assert [d.operation.value for d in doc.definitions] == ["query"]
    assert not re.search(r"\bfirst\s*:", text), "bulk queries may not page with first:"
    assert "edges" in text and "node" in text


# --- the checks themselves must be able to fail ---


def test_publication_fields_are_flagged(schema, scopes):
    doc = """query { products(first: 1) { nodes { id resourcePublicationsV2(first: 1) { nodes { isPublished } } } } }"""
    assert not validate(schema, parse(doc)), "the probe document itself must be valid"
    violations = scope_violations(schema, scopes, doc)
    assert any("resourcePublicationsV2" in v for v in violations), violations


def test_order_fields_are_flagged(schema, scopes):
    doc = """query { orders(first: 1) { nodes { id name } } }"""
    assert not validate(schema, parse(doc))
    violations = scope_violations(schema, scopes, doc)
    assert any("Order" in v and "read_orders" in v for v in violations), violations


def test_a_made_up_field_fails_validation(schema):
    doc = """query { products(first: 1) { nodes { id bodyHtmlPlus } } }"""
    assert validate(schema, parse(doc))


def test_an_inline_graphql_string_would_be_caught():
    inline = re.compile(r'(r#*)?"\s*(query|mutation)\b\s*[A-Za-z_(\{]|"\s*\{\s*(products|product|bulkOperation)\b')
    assert inline.search('let q = "query Foo { shop { name } }";')
    assert inline.search('let q = r#"{ products(first: 1) { nodes { id } } }"#;')
    assert not inline.search('serde_json::json!({ "query": document, "variables": variables })')
