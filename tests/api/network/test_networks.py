"""Networks: CRUD, provider segments, sharing, filters, pagination, revisions."""

from __future__ import annotations

from tests.api.network.conftest import Net, neutron_error


async def test_version_discovery_and_extensions(net: Net) -> None:
    r = await net.cloud.client.get("/network/")
    assert r.status_code == 200
    assert r.json()["versions"][0]["id"] == "v2.0"
    r = await net.req("GET", "/extensions")
    aliases = {e["alias"] for e in r.json()["extensions"]}
    assert {"router", "security-group", "external-net", "provider"} <= aliases


async def test_create_show_update_delete(net: Net) -> None:
    n = await net.network(name="n1")
    assert n["status"] == "ACTIVE" and n["admin_state_up"] is True
    assert n["project_id"] == n["tenant_id"] and n["revision_number"] == 0
    assert n["provider:network_type"] == "vxlan" and n["mtu"] == 1450
    assert n["subnets"] == [] and n["shared"] is False and n["router:external"] is False
    r = await net.req("PUT", f"/networks/{n['id']}", json={"network": {"name": "n2"}})
    assert r.status_code == 200, r.text
    assert r.json()["network"]["name"] == "n2" and r.json()["network"]["revision_number"] == 1
    r = await net.req("DELETE", f"/networks/{n['id']}")
    assert r.status_code == 204
    r = await net.req("GET", f"/networks/{n['id']}")
    assert r.status_code == 404 and neutron_error(r)[0] == "NetworkNotFound"


async def test_segmentation_ids_are_unique(net: Net) -> None:
    a = await net.network()
    b = await net.network()
    assert a["provider:segmentation_id"] != b["provider:segmentation_id"]
    r = await net.req("POST", "/networks", json={"network": {
        "name": "x", "provider:network_type": "vxlan",
        "provider:segmentation_id": a["provider:segmentation_id"]}})
    assert r.status_code == 409, r.text
    assert neutron_error(r)[0] == "TunnelIdInUse"


async def test_member_cannot_set_admin_attributes(net: Net) -> None:
    r = await net.req("POST", "/networks", net.cloud.demo_token,
                      json={"network": {"name": "x", "shared": True}})
    assert r.status_code == 403 and neutron_error(r)[0] == "PolicyNotAuthorized"
    n = await net.network(net.cloud.demo_token)
    assert "provider:network_type" not in n


async def test_bad_input(net: Net) -> None:
    r = await net.req("POST", "/networks", json={"network": {"bogus": 1}})
    assert r.status_code == 400 and "Unrecognized attribute" in neutron_error(r)[1]
    r = await net.req("POST", "/networks", json={"network": {"admin_state_up": "maybe"}})
    assert r.status_code == 400
    r = await net.req("POST", "/networks", json={"network": {"status": "DOWN"}})
    assert r.status_code == 400
    r = await net.req("GET", "/networks?bogus=1")
    assert r.status_code == 400


async def test_filters_fields_sorting_pagination(net: Net) -> None:
    names = ["pa", "pb", "pc", "pd"]
    ids = [(await net.network(name=n))["id"] for n in names]
    r = await net.req("GET", "/networks?name=pa&name=pc&fields=name&fields=id")
    got = r.json()["networks"]
    assert sorted(x["name"] for x in got) == ["pa", "pc"]
    assert all(set(x) == {"id", "name"} for x in got)
    r = await net.req("GET", "/networks?sort_key=name&sort_dir=desc&limit=2"
                             "&name=pa&name=pb&name=pc&name=pd")
    page = r.json()
    assert [x["name"] for x in page["networks"]] == ["pd", "pc"]
    nxt = [link for link in page["networks_links"] if link["rel"] == "next"][0]["href"]
    r = await net.cloud.client.get(nxt, headers={"X-Auth-Token": net.cloud.admin_token})
    assert [x["name"] for x in r.json()["networks"]] == ["pb", "pa"]
    assert len(ids) == 4


async def test_if_match_revision(net: Net) -> None:
    n = await net.network()
    r = await net.req("PUT", f"/networks/{n['id']}", json={"network": {"name": "y"}},
                      headers={"If-Match": "revision_number=5"})
    assert r.status_code == 412, r.text
    r = await net.req("PUT", f"/networks/{n['id']}", json={"network": {"name": "y"}},
                      headers={"If-Match": "revision_number=0"})
    assert r.status_code == 200


async def test_tags(net: Net) -> None:
    n = await net.network()
    r = await net.req("PUT", f"/networks/{n['id']}/tags", json={"tags": ["b", "a"]})
    assert r.status_code == 200 and r.json()["tags"] == ["a", "b"]
    r = await net.req("PUT", f"/networks/{n['id']}/tags/c")
    assert r.status_code == 201
    r = await net.req("GET", f"/networks?tags=a,c&id={n['id']}")
    assert [x["id"] for x in r.json()["networks"]] == [n["id"]]
    r = await net.req("GET", f"/networks?not-tags-any=c&id={n['id']}")
    assert r.json()["networks"] == []
    r = await net.req("DELETE", f"/networks/{n['id']}/tags/zz")
    assert r.status_code == 404


async def test_visibility_between_projects(net: Net) -> None:
    _, token = await net.project_user()
    private = await net.network()
    shared = await net.network(shared=True)
    r = await net.req("GET", "/networks", token)
    ids = {x["id"] for x in r.json()["networks"]}
    assert shared["id"] in ids and private["id"] not in ids
    r = await net.req("GET", f"/networks/{private['id']}", token)
    assert r.status_code == 404
    r = await net.req("DELETE", f"/networks/{shared['id']}", token)
    assert r.status_code == 403


async def test_external_network_bootstrapped(net: Net) -> None:
    r = await net.req("GET", "/networks?name=public")
    (pub,) = r.json()["networks"]
    assert pub["router:external"] is True and pub["provider:network_type"] == "flat"
    assert len(pub["subnets"]) == 1
    # members see it too (external networks are visible to all)
    r = await net.req("GET", "/networks?router:external=true", net.cloud.demo_token)
    assert pub["id"] in [n["id"] for n in r.json()["networks"]]


async def test_deleting_an_external_network_deletes_its_floating_ips(net: Net) -> None:
    ext = await net.network(**{"router:external": True})
    await net.subnet(ext["id"], "10.88.0.0/24")
    fip = await net.create("floatingip", floating_network_id=ext["id"])
    r = await net.req("DELETE", f"/networks/{ext['id']}")
    assert r.status_code == 204, r.text
    assert (await net.req("GET", f"/floatingips/{fip['id']}")).status_code == 404
