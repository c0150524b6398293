"""--baseline's verdict on every kind of catalog difference in every form it can take (missing, added, changed),
against the cutover runbook's rule restated here, not read from baseline.py."""

from __future__ import annotations

import itertools

import pytest

from fleettickets.baseline import Difference

KINDS = ["schema", "extension", "table", "column", "constraint", "unique index", "index", "view", "trigger", "rule",
         "policy", "event_trigger", "function", "immutable function", "definer function"]
FORMS = ["missing", "added", "changed"]
PLACES = ["ours, recreated later", "ours, not recreated", "another team's in reporting"]


def definition(kind: str) -> str:
    return {"unique index": "CREATE UNIQUE INDEX x ON tickets.inc (a)", "index": "CREATE INDEX x ON tickets.inc (a)",
            "immutable function": "sql immutable invoker body", "definer function": "sql stable security definer body",
            "function": "sql stable invoker body"}.get(kind, f"{kind} definition")


def difference(kind: str, form: str, place: str) -> Difference:
    catalog_kind = {"unique index": "index", "immutable function": "function", "definer function": "function"}.get(
        kind, kind)
    schema = "reporting" if place == "another team's in reporting" else "tickets"
    expected = definition(kind).replace("security definer", "invoker")
    live = definition(kind) if kind == "definer function" else f"{definition(kind)} edited"
    return Difference(key=f"{catalog_kind} {schema}.x", live=None if form == "missing" else live,
                      expected=None if form == "added" else expected, file="08_inc_open_sla_view.sql",
                      redefined_later=place == "ours, recreated later")


def runbook(kind: str, form: str, place: str) -> bool:
    """docs/deployment-and-operations.md, "Cutover from the original system": refused or noted."""
    if place == "another team's in reporting" and form == "added" and kind.endswith("function"):
        return True  # 16 would make it owner-rights and revoke it from PUBLIC
    if kind in ("trigger", "rule", "policy", "event_trigger"):
        return True  # runs code the migrations did not write, or no longer runs what they did
    if kind == "definer function" and form != "missing":
        return True  # owner rights where the migrations made it otherwise
    if kind == "definer function":
        kind = "function"  # missing, it is a function of ours like any other
    if form == "added":
        return kind in ("column", "constraint", "unique index")  # data 01–13 would not know of
    if kind in ("schema", "extension", "table", "column", "constraint", "unique index", "immutable function"):
        return True  # holds data, or computes what is stored
    if kind == "function":
        return place == "ours, not recreated"  # it would stay as it is (or stay missing) for good
    return False  # views, plain indexes: redefined later or holding no data


# Another team's object is one 01–13 do not make: it can only be there in addition.
CASES = [(kind, form, place) for kind, form, place in itertools.product(KINDS, FORMS, PLACES)
         if place != "another team's in reporting" or form == "added"]


@pytest.mark.parametrize(("kind", "form", "place"), CASES)
def test_every_kind_of_difference_in_every_form_gets_the_runbooks_verdict(kind, form, place):
    found = difference(kind, form, place)
    assert found.refused == runbook(kind, form, place), (found.key, found.live, found.expected)
