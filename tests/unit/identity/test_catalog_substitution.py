"""Keystone's URL substitutions in a token's catalog (``%(project_id)s``)."""

from __future__ import annotations

from onestack.identity.service.catalog import for_scope

CATALOG = [
    {"type": "object-store", "name": "swift", "id": "s", "endpoints": [
        {"id": "1", "interface": "public", "url": "http://h/v1/AUTH_%(project_id)s"},
        {"id": "2", "interface": "admin", "url": "http://h/v1/AUTH_$(tenant_id)s"},
    ]},
    {"type": "image", "name": "glance", "id": "i", "endpoints": [
        {"id": "3", "interface": "public", "url": "http://h/image"},
    ]},
]


def test_project_id_is_substituted_in_both_spellings() -> None:
    out = for_scope(CATALOG, project_id="p1", user_id="u1")
    urls = [ep["url"] for ep in out[0]["endpoints"]]
    assert urls == ["http://h/v1/AUTH_p1", "http://h/v1/AUTH_p1"]
    assert out[1]["endpoints"][0]["url"] == "http://h/image"
    # the shared catalog is not changed
    assert CATALOG[0]["endpoints"][0]["url"].endswith("%(project_id)s")


def test_an_endpoint_needing_a_missing_value_is_left_out() -> None:
    out = for_scope(CATALOG, project_id=None, user_id="u1")
    assert out[0]["endpoints"] == []
    assert out[1]["endpoints"][0]["url"] == "http://h/image"


def test_a_catalog_without_substitutions_is_returned_as_is() -> None:
    plain = CATALOG[1:]
    assert for_scope(plain, project_id="p", user_id="u") is plain
