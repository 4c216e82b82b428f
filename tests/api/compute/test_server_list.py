"""Listing servers page by page: the database sorts and cuts the page, and a
marker's place is found among the servers the filters keep (name regular
expressions and tags are matched in Python), so following ``servers_links``
must give every matching server once, in order, whatever the filters."""

from __future__ import annotations

from typing import Any

from tests.api.compute.conftest import V21, Compute, fault

NAMES = ("s0", "s1", "s2", "s3", "s4")  # booted in this order: newest is s4


async def _boot(nova: Compute) -> dict[str, str]:
    """The five servers of the demo project, even ones tagged ``even``; ids by name."""
    img = await nova.image()
    ids = {}
    for n, name in enumerate(NAMES):
        body = await nova.boot(nova.cloud.demo_token, imageRef=img["id"], name=name,
                               version="2.52", tags=["even"] if n % 2 == 0 else ["odd"])
        ids[name] = body["server"]["id"]
    for sid in ids.values():
        await nova.wait(sid, "ACTIVE", token=nova.cloud.demo_token)
    return ids


async def _walk(nova: Compute, query: str, token: str | None = None,
                version: str = "2.26") -> list[str]:
    """The names on every page from ``/servers/detail?query``, following the next
    links to the end."""
    path: str | None = f"/servers/detail?{query}"
    names: list[str] = []
    while path is not None:
        r = await nova.req("GET", path, token or nova.cloud.demo_token, version=version)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        names += [s["name"] for s in body["servers"]]
        links = body.get("servers_links", [])
        assert len(names) <= len(NAMES), names  # a loop would never end
        path = links[0]["href"].split(V21, 1)[1] if links else None
    return names


async def test_next_links_walk_every_filter_and_sort_once(nova: Compute) -> None:
    await _boot(nova)
    newest = list(reversed(NAMES))
    assert await _walk(nova, "") == newest
    assert await _walk(nova, "limit=2") == newest
    assert await _walk(nova, "limit=1&sort_key=display_name&sort_dir=asc") == list(NAMES)
    assert await _walk(nova, "limit=2&sort_key=display_name&sort_dir=desc") == newest
    # Python's filters, before the page is cut
    assert await _walk(nova, "limit=2&name=^s[0-3]") == ["s3", "s2", "s1", "s0"]
    assert await _walk(nova, "limit=1&tags=even") == ["s4", "s2", "s0"]
    assert await _walk(nova, "limit=2&not-tags=even&sort_key=display_name&sort_dir=asc") \
        == ["s1", "s3"]
    assert await _walk(nova, "limit=1&name=s&tags-any=odd") == ["s3", "s1"]
    # the database's filters with a marker
    assert await _walk(nova, "limit=2&status=ACTIVE&flavor=42") == newest
    # one page: exactly the limit, from the newest
    r = await nova.req("GET", "/servers?limit=3", nova.cloud.demo_token)
    assert [s["name"] for s in r.json()["servers"]] == newest[:3]
    assert set(r.json()["servers"][0]) == {"id", "name", "links"}


async def test_marker_is_one_of_the_listed_servers(nova: Compute) -> None:
    ids = await _boot(nova)
    demo = nova.cloud.demo_token
    r = await nova.req("GET", f"/servers/detail?marker={ids['s2']}", demo)
    assert [s["name"] for s in r.json()["servers"]] == ["s1", "s0"]
    r = await nova.req("GET", f"/servers?marker={ids['s2']}&limit=1&sort_key=display_name"
                       "&sort_dir=asc", demo)
    assert [s["name"] for s in r.json()["servers"]] == ["s3"]
    # a server the filters leave out is no marker, nor is another project's
    for query, marker in (("name=^s[0-3]", ids["s4"]), ("tags=odd", ids["s2"]),
                          ("status=SHUTOFF", ids["s2"]), ("status=NOPE", ids["s2"]),
                          ("name=(", ids["s2"])):
        r = await nova.req("GET", f"/servers/detail?{query}&marker={marker}", demo,
                           version="2.26")
        assert fault(r, "badRequest", 400) == f"marker [{marker}] not found", query
    r = await nova.req("GET", f"/servers?marker={ids['s2']}", nova.cloud.admin_token)
    fault(r, "badRequest", 400)
    r = await nova.req("GET", "/servers?status=NOPE", demo)
    assert r.status_code == 200 and r.json()["servers"] == []


async def test_deleted_servers_page_with_changes_since_and_for_admins(nova: Compute) -> None:
    ids = await _boot(nova)
    demo = nova.cloud.demo_token
    r = await nova.req("DELETE", f"/servers/{ids['s1']}", demo)
    assert r.status_code == 204
    await nova.gone(ids["s1"], demo)
    live = ["s4", "s3", "s2", "s0"]
    assert await _walk(nova, "limit=3") == live
    assert await _walk(nova, "limit=2&changes-since=2000-01-01T00:00:00Z") == [
        "s4", "s3", "s2", "s1", "s0"]
    # deleted=true is the admins' (others' is ignored)
    assert await _walk(nova, "limit=2&deleted=true") == live
    admin = nova.cloud.admin_token
    assert await _walk(nova, "limit=1&deleted=true&all_tenants=1", admin) == ["s1"]
    r = await nova.req("GET", f"/servers/detail?deleted=true&all_tenants=1&marker={ids['s1']}",
                       admin)
    assert r.status_code == 200 and r.json()["servers"] == []
    r = await nova.req("GET", f"/servers/detail?all_tenants=1&marker={ids['s1']}", admin)
    assert fault(r, "badRequest", 400) == f"marker [{ids['s1']}] not found"


async def test_limit_zero_is_an_empty_page(nova: Compute) -> None:
    img = await nova.image()
    await nova.boot(imageRef=img["id"])
    for path in ("/servers?limit=0", "/servers/detail?limit=0"):
        r = await nova.req("GET", path)
        assert r.status_code == 200 and r.json()["servers"] == [], r.text
    r = await nova.req("GET", "/flavors?limit=0")
    assert r.json()["flavors"] == []
    r = await nova.req("GET", "/servers?limit=1")
    assert len(r.json()["servers"]) == 1


async def test_ip_filters_match_fixed_addresses_from_their_start(nova: Compute) -> None:
    """``ip`` and ``ip6`` are regular expressions matched against the start of a
    server's fixed addresses of that version (Nova's ``_ip_filter``)."""
    token = nova.cloud.demo_token
    img = await nova.image()
    net = await nova.network(token, cidr="10.31.0.0/24")
    ids = {}
    for name, ip in (("a", "10.31.0.15"), ("b", "10.31.0.150"), ("c", "10.31.0.7")):
        body = await nova.boot(token, imageRef=img["id"], name=name, networks=[
            {"uuid": net["id"], "fixed_ip": ip}])
        ids[name] = body["server"]["id"]
    for sid in ids.values():
        await nova.wait(sid, "ACTIVE", token=token)

    async def names(query: str) -> list[str]:
        r = await nova.req("GET", f"/servers?{query}", token, version="2.1")
        assert r.status_code == 200, r.text
        return sorted(s["name"] for s in r.json()["servers"])

    assert await names("ip=10.31.0.15") == ["a", "b"]  # from the start, not whole
    assert await names("ip=10.31.0.15$") == ["a"]
    assert await names("ip=10\\.31\\.0\\.7") == ["c"]
    assert await names("ip=0.15") == []  # anchored at the start
    assert await names("ip=10.31&limit=2") == ["b", "c"]  # newest first, then cut
    assert await names("ip6=10.31") == []  # no IPv6 address
    assert await names("ip=[") == []  # not a regular expression: nothing matches
