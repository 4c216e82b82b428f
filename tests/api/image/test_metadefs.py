"""Metadata definitions (``/v2/metadefs``): namespaces, resource types and
associations, objects, properties, tags, who sees and changes what, and the
metadefs schemas."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.api.image.conftest import Images

NS = "/metadefs/namespaces"


def _name(prefix: str = "ns") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _create(images: Images, token: str | None = None, **body: Any) -> dict[str, Any]:
    body.setdefault("namespace", _name())
    r = await images.req("POST", NS, token, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def _get(images: Images, path: str, token: str | None = None) -> httpx.Response:
    return await images.req("GET", path, token)


async def test_resource_types_are_seeded_once(images: Images) -> None:
    r = await _get(images, "/metadefs/resource_types", images.cloud.demo_token)
    assert r.status_code == 200, r.text
    types = r.json()["resource_types"]
    names = [t["name"] for t in types]
    for well_known in ("OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor",
                       "OS::Nova::Server", "OS::Nova::Aggregate", "OS::Glance::Snapshot",
                       "OS::Cinder::VolumeSnapshot", "OS::Trove::Instance"):
        assert well_known in names
    assert names[0] == "OS::Glance::Image"
    assert types[0]["created_at"].endswith("Z") and types[0]["updated_at"].endswith("Z")
    again = (await _get(images, "/metadefs/resource_types")).json()["resource_types"]
    assert again == types


async def test_namespace_lifecycle(images: Images) -> None:
    admin_project = await images.project_of(images.cloud.admin_token)
    name = _name()
    r = await images.req("POST", NS, json={"namespace": name, "display_name": "Example",
                                          "description": "for tests"})
    assert r.status_code == 201, r.text
    ns = r.json()
    assert r.headers["location"] == f"/v2/metadefs/namespaces/{name}"
    assert ns["namespace"] == name and ns["display_name"] == "Example"
    assert ns["visibility"] == "private" and ns["protected"] is False
    assert ns["owner"] == admin_project
    assert ns["self"] == f"/v2/metadefs/namespaces/{name}"
    assert ns["schema"] == "/v2/schemas/metadefs/namespace"
    assert ns["created_at"].endswith("Z")
    assert (await _get(images, f"{NS}/{name}")).json() == ns
    listed = (await _get(images, NS)).json()
    assert name in [n["namespace"] for n in listed["namespaces"]]
    assert listed["schema"] == "/v2/schemas/metadefs/namespaces"
    assert listed["first"] == "/v2/metadefs/namespaces"

    assert (await images.req("POST", NS, json={"namespace": name})).status_code == 409

    # PUT replaces: what is left out returns to its default
    r = await images.req("PUT", f"{NS}/{name}", json={"namespace": name, "visibility": "public",
                                                     "protected": True})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["visibility"] == "public" and updated["protected"] is True
    assert "display_name" not in updated and "description" not in updated
    assert (await images.req("DELETE", f"{NS}/{name}")).status_code == 403
    assert (await _get(images, f"{NS}/{name}")).status_code == 200

    # renaming
    new = _name()
    r = await images.req("PUT", f"{NS}/{name}", json={"namespace": new})
    assert r.status_code == 200 and r.json()["protected"] is False
    assert (await _get(images, f"{NS}/{name}")).status_code == 404
    assert (await images.req("DELETE", f"{NS}/{new}")).status_code == 204
    assert (await _get(images, f"{NS}/{new}")).status_code == 404
    assert (await images.req("DELETE", f"{NS}/{new}")).status_code == 404


async def test_namespace_rename_conflict(images: Images) -> None:
    a, b = await _create(images), await _create(images)
    r = await images.req("PUT", f"{NS}/{a['namespace']}", json={"namespace": b["namespace"]})
    assert r.status_code == 409
    assert (await _get(images, f"{NS}/{a['namespace']}")).status_code == 200


async def test_namespace_bad_input(images: Images) -> None:
    cases: list[tuple[Any, int]] = [
        ({}, 400),
        ({"namespace": ""}, 400),
        ({"namespace": "x" * 81}, 400),
        ({"namespace": _name(), "visibility": "shared"}, 400),
        ({"namespace": _name(), "protected": "yes"}, 400),
        ({"namespace": _name(), "unknown": 1}, 400),
        ({"namespace": _name(), "description": "d" * 501}, 400),
        ({"namespace": _name(), "properties": {"p": {"title": "P"}}}, 400),
        ({"namespace": _name(), "properties": {"p": {"title": "P", "type": "strnig"}}}, 400),
        ({"namespace": _name(), "created_at": "2020-01-01T00:00:00Z"}, 403),
        ({"namespace": _name(), "self": "/x"}, 403),
        (["not", "an", "object"], 400),
    ]
    for body, status in cases:
        r = await images.req("POST", NS, json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
    r = await images.req("POST", NS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


async def test_namespace_with_contents_inline_and_prefixes(images: Images) -> None:
    name = _name()
    prop = {"title": "Boot menu", "type": "string", "enum": ["true", "false"]}
    r = await images.req("POST", NS, json={
        "namespace": name, "visibility": "public",
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"},
                                       {"name": "OS::Nova::Flavor", "prefix": "hw:"}],
        "properties": {"boot_menu": prop},
        "objects": [{"name": "CPU", "required": ["cores"],
                     "properties": {"cores": {"title": "Cores", "type": "integer", "minimum": 1}}}],
        "tags": [{"name": "t1"}, {"name": "t2"}],
    })
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["properties"] == {"boot_menu": prop}
    assert [a["name"] for a in created["resource_type_associations"]] == [
        "OS::Glance::Image", "OS::Nova::Flavor"]
    shown = (await _get(images, f"{NS}/{name}")).json()
    assert shown["properties"] == {"boot_menu": prop}
    assert shown["objects"][0]["name"] == "CPU"
    assert shown["objects"][0]["self"] == f"/v2/metadefs/namespaces/{name}/objects/CPU"
    assert sorted(t["name"] for t in shown["tags"]) == ["t1", "t2"]
    assert {a["name"]: a["prefix"] for a in shown["resource_type_associations"]} == {
        "OS::Glance::Image": "hw_", "OS::Nova::Flavor": "hw:"}

    flavor = (await _get(images, f"{NS}/{name}?resource_type=OS::Nova::Flavor")).json()
    assert list(flavor["properties"]) == ["hw:boot_menu"]
    assert list(flavor["objects"][0]["properties"]) == ["hw:cores"]
    assert flavor["objects"][0]["required"] == ["hw:cores"]

    r = await _get(images, f"{NS}/{name}/properties/hw_boot_menu?resource_type=OS::Glance::Image")
    assert r.status_code == 200 and r.json() == {"name": "boot_menu", **prop}
    r = await _get(images, f"{NS}/{name}/properties/boot_menu?resource_type=OS::Glance::Image")
    assert r.status_code == 404
    r = await _get(images, f"{NS}/{name}/properties/hw_boot_menu?resource_type=OS::Cinder::Volume")
    assert r.status_code == 404

    # a duplicate inside the body creates nothing
    again = _name()
    r = await images.req("POST", NS, json={"namespace": again, "tags": [{"name": "a"}, {"name": "a"}]})
    assert r.status_code == 409
    assert (await _get(images, f"{NS}/{again}")).status_code == 404


async def test_visibility_and_policy(images: Images) -> None:
    demo = images.cloud.demo_token
    demo_project = await images.project_of(demo)
    _, reader = await images.project_user("reader")
    public = await _create(images, visibility="public", protected=False)
    private = await _create(images)  # the admin project's
    demo_owned = await _create(images, owner=demo_project)
    for token in (demo, reader):
        listed = [n["namespace"] for n in (await _get(images, NS, token)).json()["namespaces"]]
        assert public["namespace"] in listed
        assert private["namespace"] not in listed
        assert (await _get(images, f"{NS}/{private['namespace']}", token)).status_code == 404
        assert (await _get(images, f"{NS}/{private['namespace']}/objects", token)).status_code == 404
        r = await _get(images, f"{NS}/{public['namespace']}/tags", token)
        assert r.status_code == 200 and r.json() == {"tags": []}
        # only admins write: 403 where the caller can read, 404 where it cannot
        r = await images.req("DELETE", f"{NS}/{public['namespace']}", token)
        assert r.status_code == 403
        r = await images.req("DELETE", f"{NS}/{private['namespace']}", token)
        assert r.status_code == 404
        r = await images.req("POST", f"{NS}/{public['namespace']}/tags/x", token)
        assert r.status_code == 403
        r = await images.req("POST", NS, token, json={"namespace": _name()})
        assert r.status_code == 403
    demo_listed = [n["namespace"] for n in (await _get(images, NS, demo)).json()["namespaces"]]
    assert demo_owned["namespace"] in demo_listed
    r = await images.req("PUT", f"{NS}/{demo_owned['namespace']}", demo,
                         json={"namespace": demo_owned["namespace"]})
    assert r.status_code == 403
    admin_listed = [n["namespace"] for n in (await _get(images, NS)).json()["namespaces"]]
    assert {public["namespace"], private["namespace"], demo_owned["namespace"]} <= set(admin_listed)


async def test_namespace_list_filters_and_paging(images: Images) -> None:
    tag = uuid.uuid4().hex[:6]
    made = [await _create(images, namespace=f"pg-{tag}-{i}", visibility="public") for i in range(3)]
    rtype = f"OS::Test::{tag}"
    r = await images.req("POST", f"{NS}/{made[1]['namespace']}/resource_types", json={"name": rtype})
    assert r.status_code == 201
    r = await _get(images, f"{NS}?resource_types={rtype},OS::Nope")
    assert [n["namespace"] for n in r.json()["namespaces"]] == [made[1]["namespace"]]
    assert r.json()["namespaces"][0]["resource_type_associations"][0]["name"] == rtype
    r = await _get(images, f"{NS}?visibility=private&resource_types={rtype}")
    assert r.json()["namespaces"] == []
    assert (await _get(images, f"{NS}?visibility=shared")).status_code == 400
    assert (await _get(images, f"{NS}?sort_dir=up")).status_code == 400
    assert (await _get(images, f"{NS}?sort_key=bogus")).status_code == 400
    assert (await _get(images, f"{NS}?limit=x")).status_code == 400
    assert (await _get(images, f"{NS}?marker=no-such-namespace")).status_code == 404

    # paging through everything by name finds each namespace once, in order
    seen: list[str] = []
    url = f"{NS}?limit=2&sort_key=namespace&sort_dir=asc"
    for _ in range(50):
        page = (await _get(images, url)).json()
        seen += [n["namespace"] for n in page["namespaces"]]
        if "next" not in page:
            break
        assert page["next"].startswith("/v2/metadefs/namespaces?")
        url = page["next"][len("/v2"):]
    else:
        raise AssertionError("paging never ends")
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert [m["namespace"] for m in made] == [s for s in seen if s.startswith(f"pg-{tag}")]
    # newest first by default
    newest = [n["namespace"] for n in (await _get(images, NS)).json()["namespaces"]]
    mine = [n for n in newest if n.startswith(f"pg-{tag}")]
    assert mine == [m["namespace"] for m in reversed(made)]


async def test_resource_type_associations(images: Images) -> None:
    ns = (await _create(images))["namespace"]
    path = f"{NS}/{ns}/resource_types"
    r = await images.req("POST", path, json={"name": "OS::Cinder::Volume", "prefix": "hw_",
                                            "properties_target": "image"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "OS::Cinder::Volume" and body["prefix"] == "hw_"
    assert body["properties_target"] == "image" and body["created_at"].endswith("Z")
    assert (await images.req("POST", path, json={"name": "OS::Cinder::Volume"})).status_code == 409
    assert (await images.req("POST", path, json={"prefix": "x"})).status_code == 400
    assert (await images.req("POST", path, json={"name": "x", "created_at": "x"})).status_code == 403
    # an unknown resource type comes into being
    new_type = f"OS::Custom::{uuid.uuid4().hex[:6]}"
    assert (await images.req("POST", path, json={"name": new_type})).status_code == 201
    types = [t["name"] for t in (await _get(images, "/metadefs/resource_types")).json()["resource_types"]]
    assert new_type in types
    listed = (await _get(images, path)).json()["resource_type_associations"]
    assert [a["name"] for a in listed] == ["OS::Cinder::Volume", new_type]

    assert (await images.req("DELETE", f"{path}/OS::Cinder::Volume")).status_code == 204
    assert (await images.req("DELETE", f"{path}/OS::Cinder::Volume")).status_code == 404
    assert (await images.req("DELETE", f"{path}/OS::Unknown::Type")).status_code == 404
    listed = (await _get(images, path)).json()["resource_type_associations"]
    assert [a["name"] for a in listed] == [new_type]
    # the type outlives its association
    types = [t["name"] for t in (await _get(images, "/metadefs/resource_types")).json()["resource_types"]]
    assert new_type in types

    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns, "protected": True})
    assert (await images.req("DELETE", f"{path}/{new_type}")).status_code == 403
    assert (await images.req("POST", f"{NS}/missing-{ns}/resource_types",
                             json={"name": "OS::Glance::Image"})).status_code == 404


async def test_objects(images: Images) -> None:
    ns = (await _create(images))["namespace"]
    path = f"{NS}/{ns}/objects"
    obj = {"name": "CPU Limits", "description": "limits", "required": [],
           "properties": {"quota:cpu_period": {"title": "Period", "type": "integer",
                                               "minimum": 1000, "maximum": 1000000}}}
    r = await images.req("POST", path, json=obj)
    assert r.status_code == 201, r.text
    created = r.json()
    assert {k: created[k] for k in obj} == obj
    assert created["self"] == f"/v2/metadefs/namespaces/{ns}/objects/CPU Limits"
    assert created["schema"] == "/v2/schemas/metadefs/object"
    assert (await images.req("POST", path, json={"name": "CPU Limits"})).status_code == 409
    assert (await images.req("POST", path, json={"description": "no name"})).status_code == 400
    assert (await images.req("POST", path, json={"name": "x", "schema": "s"})).status_code == 403
    bad_prop = {"name": "x", "properties": {"p": {"title": "P", "type": "integer", "minimum": "1"}}}
    assert (await images.req("POST", path, json=bad_prop)).status_code == 400
    assert (await images.req("POST", path, json={"name": "x", "required": ["a", "a"]})).status_code == 400

    assert (await _get(images, f"{path}/CPU Limits")).json() == created
    assert (await _get(images, f"{path}/nope")).status_code == 404

    # PUT replaces the object whole, renaming it
    r = await images.req("PUT", f"{path}/CPU Limits", json={"name": "CPU"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "CPU" and "description" not in r.json() and "properties" not in r.json()
    assert (await _get(images, f"{path}/CPU Limits")).status_code == 404
    await images.req("POST", path, json={"name": "Disk"})
    assert (await images.req("PUT", f"{path}/CPU", json={"name": "Disk"})).status_code == 409

    listed = (await _get(images, path)).json()
    assert listed["schema"] == "/v2/schemas/metadefs/objects"
    assert [o["name"] for o in listed["objects"]] == ["Disk", "CPU"]
    by_name = (await _get(images, f"{path}?sort_key=name&sort_dir=asc&limit=1")).json()["objects"]
    assert [o["name"] for o in by_name] == ["CPU"]
    after = (await _get(images, f"{path}?sort_key=name&sort_dir=asc&marker=CPU")).json()["objects"]
    assert [o["name"] for o in after] == ["Disk"]

    assert (await images.req("DELETE", f"{path}/CPU")).status_code == 204
    assert (await images.req("DELETE", f"{path}/CPU")).status_code == 404
    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns, "protected": True})
    assert (await images.req("DELETE", f"{path}/Disk")).status_code == 403
    assert (await images.req("DELETE", path)).status_code == 403
    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns})
    assert (await images.req("DELETE", path)).status_code == 204
    assert (await _get(images, path)).json()["objects"] == []


async def test_properties(images: Images) -> None:
    ns = (await _create(images))["namespace"]
    path = f"{NS}/{ns}/properties"
    assert (await _get(images, path)).json() == {"properties": {}}
    prop = {"name": "hypervisor_type", "title": "Hypervisor", "type": "string",
            "enum": ["kvm", "qemu"], "description": "which hypervisor"}
    r = await images.req("POST", path, json=prop)
    assert r.status_code == 201, r.text
    assert r.json() == prop
    assert (await images.req("POST", path, json=prop)).status_code == 409
    for bad in ({"title": "no name", "type": "string"},
                {"name": "p", "type": "string"},
                {"name": "p", "title": "P", "type": "text"},
                {"name": "p", "title": "P", "type": "string", "maxLength": -1},
                {"name": "p", "title": "P", "type": "string", "pattern": "("},
                {"name": "p", "title": "P", "type": "string", "colour": "red"},
                {"name": "p" * 81, "title": "P", "type": "string"}):
        r = await images.req("POST", path, json=bad)
        assert r.status_code == 400, (bad, r.text)
    r = await images.req("POST", path, json={"name": "p", "title": "P", "type": "string",
                                            "updated_at": "x"})
    assert r.status_code == 403

    assert (await _get(images, f"{path}/hypervisor_type")).json() == prop
    listed = (await _get(images, path)).json()["properties"]
    assert listed == {"hypervisor_type": {k: v for k, v in prop.items() if k != "name"}}

    # PUT replaces the definition and may rename
    r = await images.req("PUT", f"{path}/hypervisor_type",
                         json={"name": "hv", "title": "HV", "type": "string"})
    assert r.status_code == 200 and r.json() == {"name": "hv", "title": "HV", "type": "string"}
    assert (await _get(images, f"{path}/hypervisor_type")).status_code == 404
    assert (await images.req("PUT", f"{path}/hv", json={"title": "HV", "type": "string"})).status_code == 400
    await images.req("POST", path, json={"name": "other", "title": "O", "type": "integer"})
    r = await images.req("PUT", f"{path}/hv", json={"name": "other", "title": "HV", "type": "string"})
    assert r.status_code == 409

    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns, "protected": True})
    assert (await images.req("DELETE", f"{path}/hv")).status_code == 403
    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns})
    assert (await images.req("DELETE", f"{path}/hv")).status_code == 204
    assert (await images.req("DELETE", f"{path}/hv")).status_code == 404
    assert list((await _get(images, path)).json()["properties"]) == ["other"]
    assert (await images.req("DELETE", path)).status_code == 204
    assert (await _get(images, path)).json() == {"properties": {}}


async def test_tags(images: Images) -> None:
    ns = (await _create(images))["namespace"]
    path = f"{NS}/{ns}/tags"
    r = await images.req("POST", path, json={"tags": [{"name": "a"}, {"name": "b"}]})
    assert r.status_code == 201 and r.json() == {"tags": [{"name": "a"}, {"name": "b"}]}
    # without X-Openstack-Append the new list replaces the old one
    r = await images.req("POST", path, json={"tags": [{"name": "c"}]})
    assert r.status_code == 201
    assert [t["name"] for t in (await _get(images, path)).json()["tags"]] == ["c"]
    r = await images.req("POST", path, json={"tags": [{"name": "d"}]},
                         headers={"X-Openstack-Append": "True"})
    assert r.status_code == 201
    names = sorted(t["name"] for t in (await _get(images, path)).json()["tags"])
    assert names == ["c", "d"]
    r = await images.req("POST", path, json={"tags": [{"name": "c"}]}, headers={"X-Openstack-Append": "true"})
    assert r.status_code == 409
    assert (await images.req("POST", path, json={"tags": [{"name": "e"}, {"name": "e"}]})).status_code == 409
    assert sorted(t["name"] for t in (await _get(images, path)).json()["tags"]) == ["c", "d"]
    assert (await images.req("POST", path, json={"tags": [{"nom": "x"}]})).status_code == 400
    assert (await images.req("POST", path, json={"tags": [{"name": "x" * 81}]})).status_code == 400

    r = await images.req("POST", f"{path}/single")
    assert r.status_code == 201, r.text
    single = r.json()
    assert single["name"] == "single" and single["created_at"].endswith("Z")
    assert (await images.req("POST", f"{path}/single")).status_code == 409
    assert (await _get(images, f"{path}/single")).json() == single
    r = await images.req("PUT", f"{path}/single", json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert (await _get(images, f"{path}/single")).status_code == 404
    assert (await images.req("PUT", f"{path}/renamed", json={"name": "c"})).status_code == 409
    by_name = (await _get(images, f"{path}?sort_key=name&sort_dir=asc&limit=2")).json()["tags"]
    assert by_name == [{"name": "c"}, {"name": "d"}]
    after = (await _get(images, f"{path}?sort_key=name&sort_dir=asc&marker=d")).json()["tags"]
    assert after == [{"name": "renamed"}]

    assert (await images.req("DELETE", f"{path}/renamed")).status_code == 204
    assert (await images.req("DELETE", f"{path}/renamed")).status_code == 404
    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns, "protected": True})
    assert (await images.req("DELETE", f"{path}/c")).status_code == 403
    assert (await images.req("DELETE", path)).status_code == 403
    await images.req("PUT", f"{NS}/{ns}", json={"namespace": ns})
    assert (await images.req("DELETE", path)).status_code == 204
    assert (await _get(images, path)).json() == {"tags": []}


async def test_deleting_a_namespace_deletes_its_contents(images: Images) -> None:
    name = _name()
    await _create(images, namespace=name, tags=[{"name": "t"}], objects=[{"name": "o"}],
                  properties={"p": {"title": "P", "type": "string"}},
                  resource_type_associations=[{"name": "OS::Glance::Image"}])
    assert (await images.req("DELETE", f"{NS}/{name}")).status_code == 204
    fresh = await _create(images, namespace=name)
    shown = (await _get(images, f"{NS}/{name}")).json()
    assert shown == fresh
    for part in ("tags", "objects", "properties", "resource_type_associations"):
        assert part not in shown


async def test_metadefs_schemas(images: Images) -> None:
    _, reader = await images.project_user("reader")
    expected = {
        "namespace": "namespace", "namespaces": "namespaces", "object": "object",
        "objects": "objects", "property": "property", "properties": "properties",
        "tag": "tag", "tags": "tags", "resource_type": "resource_type_association",
        "resource_types": "resource_type_associations",
    }
    for path, name in expected.items():
        r = await _get(images, f"/schemas/metadefs/{path}", reader)
        assert r.status_code == 200, (path, r.text)
        doc = r.json()
        assert doc["name"] == name
        assert isinstance(doc["properties"], dict)
    namespace = (await _get(images, "/schemas/metadefs/namespace")).json()
    assert namespace["required"] == ["namespace"]
    assert namespace["properties"]["visibility"]["enum"] == ["public", "private"]
    assert "property" in namespace["definitions"]
    namespaces = (await _get(images, "/schemas/metadefs/namespaces")).json()
    assert namespaces["properties"]["namespaces"]["items"]["properties"] == namespace["properties"]
    assert "property" in namespaces["definitions"]
    props = (await _get(images, "/schemas/metadefs/properties")).json()
    assert props["properties"]["properties"]["type"] == "object"
    assert "name" not in props["properties"]["properties"]["additionalProperties"]["required"]
    assert (await _get(images, "/schemas/metadefs/nothing")).status_code == 404
