#!/usr/bin/env python3
"""Validate tests/grounding/worlds.json and corpus.jsonl (stdlib only).

Usage: python3 tests/grounding/check_corpus.py
Exit status 0 when every check passes, 1 otherwise. Prints counts by
language x label and by kind.
"""
import json
import os
import re
import sys
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
WORLDS_PATH = os.path.join(HERE, "worlds.json")
CORPUS_PATH = os.path.join(HERE, "corpus.jsonl")

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pt", "sv", "pl", "ja"]
CURRENCY = {"en": "USD", "de": "EUR", "fr": "EUR", "es": "EUR", "it": "EUR", "nl": "EUR",
            "pt": "EUR", "sv": "SEK", "pl": "PLN", "ja": "JPY"}
DEFECT_KINDS = ["invented_offer", "scarcity", "rescoped_offer", "negated_brief", "wrong_price",
                "invented_code", "link", "fullwidth", "other_customer_name", "surname",
                "name_when_unknown", "wrong_language", "too_long", "personal_data", "foreign_product"]
CLEAN_KINDS = ["title_word", "description_fact", "surname_word", "offer_rendered", "date_or_size",
               "negation", "purchase_reference", "plain"]
LIMITS = {"subject": 60, "preheader": 100, "body": 500}
OFFER_FIELDS = {
    "none": set(),
    "percent_off": {"percent", "scope", "ends_on", "code"},
    "amount_off": {"amount", "min_spend", "ends_on", "code"},
    "free_shipping": {"min_spend", "ends_on", "code"},
}
CASE_KEYS = {"id", "language", "world", "customer", "others", "offer", "brief", "copy", "label", "kind", "note"}
MIN_CASES, MIN_PER_LANGUAGE, MIN_PER_KIND, MIN_LANGS_PER_KIND = 320, 28, 8, 5

errors = []


def err(where, msg):
    errors.append("%s: %s" % (where, msg))


def money_ok(value, lang):
    if not isinstance(value, str):
        return False
    if lang == "ja":
        return re.fullmatch(r"[1-9][0-9]*", value) is not None
    return re.fullmatch(r"(0|[1-9][0-9]*)\.[0-9]{2}", value) is not None


def check_offer(where, offer, lang):
    if not isinstance(offer, dict) or offer.get("kind") not in OFFER_FIELDS:
        err(where, "offer must be an object with kind in %s" % sorted(OFFER_FIELDS))
        return
    kind = offer["kind"]
    extra = set(offer) - {"kind"} - OFFER_FIELDS[kind]
    missing = OFFER_FIELDS[kind] - set(offer)
    if extra or missing:
        err(where, "offer %s: unexpected %s / missing %s" % (kind, sorted(extra), sorted(missing)))
    if kind == "percent_off":
        p = offer.get("percent")
        if not isinstance(p, int) or not 0 < p < 100:
            err(where, "percent must be an int in 1..99")
    if kind == "amount_off" and not money_ok(offer.get("amount"), lang):
        err(where, "amount must be a decimal string in the world's currency format")
    for field in ("min_spend",):
        if field in offer and offer[field] is not None and not money_ok(offer[field], lang):
            err(where, "%s must be null or a decimal string" % field)
    if offer.get("ends_on") is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(offer["ends_on"])):
        err(where, "ends_on must be null or YYYY-MM-DD")
    if offer.get("code") is not None and not re.fullmatch(r"[A-Z0-9]+", str(offer["code"])):
        err(where, "code must be null or upper-case ASCII letters/digits")
    if offer.get("scope") is not None and not isinstance(offer["scope"], str):
        err(where, "scope must be null or a string")


def load_worlds():
    with open(WORLDS_PATH, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        err("worlds.json", "top level must be a list of worlds")
        return {}
    worlds = {}
    for i, w in enumerate(data):
        where = "worlds.json[%d]" % i
        lang = w.get("language")
        if lang not in LANGUAGES:
            err(where, "unknown language %r" % lang)
            continue
        if lang in worlds:
            err(where, "duplicate world for %s" % lang)
        worlds[lang] = w
        if w.get("currency") != CURRENCY[lang]:
            err(where, "currency %r, expected %s" % (w.get("currency"), CURRENCY[lang]))
        if not w.get("shop"):
            err(where, "missing shop name")
        products = w.get("products", [])
        if len(products) != 4:
            err(where, "expected 4 products, got %d" % len(products))
        keys = set()
        for p in products:
            for field in ("key", "title", "price", "product_type", "description"):
                if not p.get(field):
                    err(where, "product %r missing %s" % (p.get("key"), field))
            keys.add(p.get("key"))
            if not money_ok(p.get("price"), lang):
                err(where, "product %s price %r badly formatted" % (p.get("key"), p.get("price")))
        titles = [p.get("title") for p in products]
        if len(set(titles)) != len(titles):
            err(where, "duplicate product titles")
        customers = w.get("customers", [])
        if len(customers) != 4:
            err(where, "expected 4 customers, got %d" % len(customers))
        if sum(1 for c in customers if c.get("first_name") is None) != 1:
            err(where, "exactly one customer must have first_name null")
        for c in customers:
            if not c.get("last_name"):
                err(where, "customer %s missing last_name" % c.get("key"))
            purchases = c.get("purchases", [])
            if len(purchases) != 1 or purchases[0] not in keys:
                err(where, "customer %s must have exactly one purchase from the catalog" % c.get("key"))
        fc = w.get("filler_copy", {})
        for slot in ("subject", "preheader", "body"):
            text = fc.get(slot, "")
            if not text:
                err(where, "filler_copy.%s missing" % slot)
            elif len(text.replace("{first_name}", "x" * 10).replace("{product}", "x" * 30)) > LIMITS[slot]:
                err(where, "filler_copy.%s likely over limit" % slot)
        if "{first_name}" not in fc.get("body", "") or "{product}" not in fc.get("body", ""):
            err(where, "filler_copy.body must use {first_name} and {product}")
    missing = set(LANGUAGES) - set(worlds)
    if missing:
        err("worlds.json", "missing worlds for %s" % sorted(missing))
    return worlds


def check_case(where, case, worlds, seen_ids):
    keys = set(case)
    if keys != CASE_KEYS:
        err(where, "keys differ: extra %s missing %s" % (sorted(keys - CASE_KEYS), sorted(CASE_KEYS - keys)))
    cid = case.get("id", "")
    lang = case.get("language")
    where = "%s (%s)" % (where, cid)
    if cid in seen_ids:
        err(where, "duplicate id")
    seen_ids.add(cid)
    if lang not in LANGUAGES:
        err(where, "unknown language %r" % lang)
        return
    if not re.fullmatch(r"%s-\d{3}" % lang, cid):
        err(where, "id must look like %s-NNN" % lang)
    world = worlds.get(case.get("world"))
    if world is None:
        err(where, "unknown world %r" % case.get("world"))
        return
    if world["language"] != lang:
        err(where, "world language differs from case language")
    customers = {c["key"]: c for c in world["customers"]}
    products = {p["title"]: p for p in world["products"]}
    cust = customers.get(case.get("customer"))
    if cust is None:
        err(where, "unknown customer %r" % case.get("customer"))
        return
    others = case.get("others")
    if not isinstance(others, list) or len(others) > 2:
        err(where, "others must be a list of 0-2 customer keys")
        others = []
    for o in others:
        if o not in customers:
            err(where, "unknown other customer %r" % o)
        if o == cust["key"]:
            err(where, "customer listed in others")
    if len(set(others)) != len(others):
        err(where, "duplicate others")
    check_offer(where, case.get("offer"), lang)
    if not isinstance(case.get("brief"), str) or not case["brief"].strip():
        err(where, "brief must be non-empty text")
    label, kind = case.get("label"), case.get("kind")
    if label == "defect":
        if kind not in DEFECT_KINDS:
            err(where, "defect kind %r not in %s" % (kind, DEFECT_KINDS))
    elif label == "clean":
        if kind not in CLEAN_KINDS:
            err(where, "clean kind %r not in %s" % (kind, CLEAN_KINDS))
    else:
        err(where, "label must be clean or defect")
    if not isinstance(case.get("note"), str) or not case["note"].strip():
        err(where, "note must be non-empty text")
    copy = case.get("copy")
    if not isinstance(copy, dict) or set(copy) != {"subject", "preheader", "body", "products"}:
        err(where, "copy must have subject, preheader, body, products")
        return
    for slot in LIMITS:
        if not isinstance(copy[slot], str) or not copy[slot].strip():
            err(where, "copy.%s must be non-empty text" % slot)
            return
    titles = copy["products"]
    if not isinstance(titles, list) or not 1 <= len(titles) <= 3:
        err(where, "copy.products must list 1-3 titles")
        titles = []
    bought = set(cust["purchases"])
    for t in titles:
        p = products.get(t)
        if p is None:
            err(where, "copy.products title %r not in world %s" % (t, lang))
        elif p["key"] in bought:
            err(where, "copy.products %r is the customer's own purchase, not a candidate" % t)
    if len(set(titles)) != len(titles):
        err(where, "duplicate titles in copy.products")
    over = [s for s in LIMITS if len(copy[s]) > LIMITS[s]]
    text = "\n".join(copy[s] for s in LIMITS)
    if label == "clean":
        if over:
            err(where, "clean case over limit in %s" % over)
        if cust["first_name"] is not None and any(
                customers[o]["first_name"] and customers[o]["first_name"] in text for o in others):
            err(where, "clean case mentions another customer's first name")
        if re.search(r"https?://|www\.", text):
            err(where, "clean case contains a URL")
        if re.search(r"[\uFF10-\uFF19\uFF05]", text):
            err(where, "clean case contains full-width digits or percent sign")
        if re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text):
            err(where, "clean case contains an email address")
        missing = [t for t in titles if t not in text]
        if missing:
            err(where, "clean copy lists %s in copy.products but never names it exactly" % missing)
    elif kind not in ("foreign_product", "wrong_language"):
        missing = [t for t in titles if t not in text]
        if missing:
            err(where, "defect copy lists %s in copy.products but never names it exactly" % missing)
    # per-kind structural requirements
    if kind == "too_long" and not over:
        err(where, "too_long case has no slot over its limit")
    if kind != "too_long" and over:
        err(where, "slot(s) %s over limit but kind is %s" % (over, kind))
    if kind == "other_customer_name":
        if not others:
            err(where, "other_customer_name needs others")
        elif not any(customers[o]["first_name"] and customers[o]["first_name"][:3] in text for o in others):
            err(where, "other_customer_name: no other customer's name found in copy")
    if kind == "name_when_unknown" and cust["first_name"] is not None:
        err(where, "name_when_unknown requires a customer with first_name null")
    if kind == "surname" and cust["last_name"].lower() not in text.lower():
        err(where, "surname case does not contain the last name")
    if kind == "surname_word" and cust["last_name"].lower() not in text.lower():
        err(where, "surname_word case does not contain the last-name word")
    if kind in ("rescoped_offer", "offer_rendered", "invented_code") and case["offer"]["kind"] == "none" \
            and kind != "invented_code":
        err(where, "%s needs a stated offer" % kind)
    if kind == "negated_brief" and case["offer"]["kind"] != "none":
        err(where, "negated_brief needs offer none")
    if kind == "link" and not re.search(r"https?://|www\.|\b[\w-]+\.(com|de|fr|es|it|nl|pt|se|pl|jp)\b", text):
        err(where, "link case has no URL or domain")
    if kind == "fullwidth" and not re.search(r"[\uFF01-\uFF5E]", text):
        err(where, "fullwidth case has no full-width characters")
    if kind == "purchase_reference":
        bought_titles = [p["title"] for p in world["products"] if p["key"] in bought]
        if not any(t in text for t in bought_titles):
            err(where, "purchase_reference does not name the purchased product")
    if kind == "title_word" and not any(
            re.search(r"Sale|Deal|Code|Free|Gratis|Outlet|Código|Kod|フリー", t) for t in titles):
        err(where, "title_word case lists no product with a trap word")


def main():
    worlds = load_worlds()
    cases = []
    with open(CORPUS_PATH, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                cases.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                err("corpus.jsonl:%d" % n, "invalid JSON: %s" % e)
    seen = set()
    for n, case in cases:
        check_case("corpus.jsonl:%d" % n, case, worlds, seen)

    by_lang_label = Counter((c.get("language"), c.get("label")) for _, c in cases)
    by_kind = Counter(c.get("kind") for _, c in cases)
    kind_langs = defaultdict(set)
    for _, c in cases:
        kind_langs[c.get("kind")].add(c.get("language"))

    print("%-6s %6s %6s %6s" % ("lang", "clean", "defect", "total"))
    for lang in LANGUAGES:
        cl, de = by_lang_label[(lang, "clean")], by_lang_label[(lang, "defect")]
        print("%-6s %6d %6d %6d" % (lang, cl, de, cl + de))
        if cl + de < MIN_PER_LANGUAGE:
            err(lang, "only %d cases (need %d)" % (cl + de, MIN_PER_LANGUAGE))
    tc = sum(v for (l, lab), v in by_lang_label.items() if lab == "clean")
    td = sum(v for (l, lab), v in by_lang_label.items() if lab == "defect")
    print("%-6s %6d %6d %6d" % ("all", tc, td, tc + td))
    print()
    print("%-20s %-7s %5s %6s" % ("kind", "label", "cases", "langs"))
    for kind in DEFECT_KINDS + CLEAN_KINDS:
        label = "defect" if kind in DEFECT_KINDS else "clean"
        print("%-20s %-7s %5d %6d" % (kind, label, by_kind[kind], len(kind_langs[kind])))
        if by_kind[kind] < MIN_PER_KIND or len(kind_langs[kind]) < MIN_LANGS_PER_KIND:
            err(kind, "needs >= %d cases over >= %d languages" % (MIN_PER_KIND, MIN_LANGS_PER_KIND))
    if len(cases) < MIN_CASES:
        err("corpus.jsonl", "only %d cases (need %d)" % (len(cases), MIN_CASES))
    print()
    if errors:
        for e in errors:
            print("ERROR", e)
        print("\n%d error(s)" % len(errors))
        return 1
    print("OK: %d cases, %d worlds" % (len(cases), len(worlds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
