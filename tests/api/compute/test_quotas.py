"""os-quota-sets and os-quota-class-sets: views by microversion, Nova's checks on
updates, per-user limits, reverting, and the quotas the server, server group and
key pair checks and /limits then apply."""

from __future__ import annotations

from typing import Any

from tests.api.compute.conftest import Compute, fault

ALL = {"cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
       "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
       "metadata_items", "ram", "security_group_rules", "security_groups",
       "server_group_members", "server_groups"}
NETWORK = {"fixed_ips", "floating_ips", "security_group_rules", "security_groups"}
INJECTED = {"injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}


async def _put(nova: Compute, project: str, body: dict[str, Any], *, query: str = "",
               version: str = "2.1", token: str | None = None) -> Any:
    return await nova.req("PUT", f"/os-quota-sets/{project}{query}", token, version=version,
                          json={"quota_set": body})


async def test_show_and_defaults_by_microversion(nova: Compute) -> None:
    project, _, token = await nova.project_user()
    r = await nova.req("GET", f"/os-quota-sets/{project}", token)
    assert r.status_code == 200, r.text
    q = r.json()["quota_set"]
    assert set(q) == ALL | {"id"} and q["id"] == project
    assert (q["instances"], q["cores"], q["ram"], q["fixed_ips"]) == (10, 20, 51200, -1)
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token,
                        version="2.36")).json()["quota_set"]
    assert set(q) == (ALL - NETWORK) | {"id"}
    q = (await nova.req("GET", f"/os-quota-sets/{project}/defaults", token,
                        version="2.57")).json()["quota_set"]
    assert set(q) == (ALL - NETWORK - INJECTED) | {"id"} and q["server_groups"] == 10
    # another project's quotas are for admins; defaults for anyone
    fault(await nova.req("GET", f"/os-quota-sets/{project}", nova.cloud.demo_token),
          "forbidden", 403)
    r = await nova.req("GET", f"/os-quota-sets/{project}/defaults", nova.cloud.demo_token)
    assert r.status_code == 200
    fault(await nova.req("GET", f"/os-quota-sets/{project}?bogus=1", token, version="2.75"),
          "badRequest", 400)


async def test_update_detail_and_enforcement(nova: Compute) -> None:
    project, _, token = await nova.project_user()
    img = await nova.image()
    await nova.boot(token, imageRef=img["id"])
    r = await nova.req("GET", f"/os-quota-sets/{project}/detail", token)
    q = r.json()["quota_set"]
    assert q["instances"] == {"in_use": 1, "limit": 10, "reserved": 0}
    assert q["cores"] == {"in_use": 1, "limit": 20, "reserved": 0}
    assert q["key_pairs"] == {"in_use": 0, "limit": 100, "reserved": 0}
    # members and admins-only
    fault(await _put(nova, project, {"instances": 5}, token=token), "forbidden", 403)
    r = await _put(nova, project, {"instances": 2, "cores": "4"})
    assert r.status_code == 200, r.text
    q = r.json()["quota_set"]
    assert "id" not in q and (q["instances"], q["cores"], q["ram"]) == (2, 4, 51200)
    r = await nova.req("GET", "/limits", token)
    a = r.json()["limits"]["absolute"]
    assert (a["maxTotalInstances"], a["maxTotalCores"], a["totalInstancesUsed"]) == (2, 4, 1)
    await nova.boot(token, imageRef=img["id"])
    r = await nova.req("POST", "/servers", token, version="2.37", json={"server": {
        "name": "x", "flavorRef": "42", "imageRef": img["id"], "networks": "none"}})
    assert fault(r, "forbidden", 403) == ("Quota exceeded for instances: Requested 1, but "
                                          "already used 2 of 2 instances")
    # below what is used: refused unless forced, and nothing changes
    r = await _put(nova, project, {"instances": 1, "cores": 10})
    assert fault(r, "badRequest", 400) == ("Quota limit 1 for instances must be greater "
                                           "than or equal to already used and reserved 2.")
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["instances"], q["cores"]) == (2, 4)
    r = await _put(nova, project, {"instances": 1, "force": True})
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 1
    r = await _put(nova, project, {"instances": -1})
    assert r.json()["quota_set"]["instances"] == -1
    # back to the defaults
    r = await nova.req("DELETE", f"/os-quota-sets/{project}")
    assert r.status_code == 202
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert (q["instances"], q["cores"]) == (10, 20)
    fault(await nova.req("DELETE", f"/os-quota-sets/{project}", token), "forbidden", 403)


async def test_update_validation(nova: Compute) -> None:
    project, _, _ = await nova.project_user()

    async def bad(body: Any, version: str = "2.1") -> str:
        r = await nova.req("PUT", f"/os-quota-sets/{project}", version=version, json=body)
        return fault(r, "badRequest", 400)

    assert "is less than the minimum of -1" in await bad({"quota_set": {"cores": -2}})
    assert "does not match" in await bad({"quota_set": {"cores": "ten"}})
    assert "is not of type 'integer', 'string'" in await bad({"quota_set": {"cores": 1.5}})
    assert "greater than the maximum" in await bad({"quota_set": {"cores": 2 ** 31}})
    assert "'bogus' was unexpected" in await bad({"quota_set": {"bogus": 1}})
    assert "'floating_ips' was unexpected" in await bad({"quota_set": {"floating_ips": 1}},
                                                        "2.36")
    assert "'injected_files' was unexpected" in await bad({"quota_set": {"injected_files": 1}},
                                                          "2.57")
    assert "force" in await bad({"quota_set": {"cores": 1, "force": "maybe"}})
    assert "'quota_set' is a required property" in await bad({})
    # a project the identity service does not know
    r = await nova.req("PUT", "/os-quota-sets/no-such-project",
                       json={"quota_set": {"cores": 1}})
    assert fault(r, "badRequest", 400) == "Project ID no-such-project is not a valid project."
    # none of it was written
    q = (await nova.req("GET", f"/os-quota-sets/{project}")).json()["quota_set"]
    assert q["cores"] == 20


async def test_user_quotas(nova: Compute) -> None:
    project, user, token = await nova.project_user()
    img = await nova.image()
    r = await _put(nova, project, {"instances": 4})
    assert r.status_code == 200
    # a user's limit cannot pass what the project leaves
    r = await _put(nova, project, {"instances": 5}, query=f"?user_id={user}")
    assert fault(r, "badRequest", 400) == ("Quota limit 5 for instances must be less than "
                                           "or equal to 4.")
    r = await _put(nova, project, {"instances": 1}, query=f"?user_id={user}")
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 1
    r = await nova.req("GET", f"/os-quota-sets/{project}?user_id={user}", token)
    assert r.json()["quota_set"]["instances"] == 1
    assert r.json()["quota_set"]["cores"] == 20
    # the project cannot go below what its users' limits add up to
    r = await _put(nova, project, {"instances": 0})
    assert "must be greater than or equal to already used and reserved 1." in \
        fault(r, "badRequest", 400)
    # the user's limit applies to the user's servers
    await nova.boot(token, imageRef=img["id"])
    r = await nova.req("POST", "/servers", token, version="2.37", json={"server": {
        "name": "x", "flavorRef": "42", "imageRef": img["id"], "networks": "none"}})
    assert fault(r, "forbidden", 403) == ("Quota exceeded for instances: Requested 1, but "
                                          "already used 1 of 1 instances")
    r = await nova.req("GET", f"/os-quota-sets/{project}/detail?user_id={user}", token)
    assert r.json()["quota_set"]["instances"] == {"in_use": 1, "limit": 1, "reserved": 0}
    r = await nova.req("DELETE", f"/os-quota-sets/{project}?user_id={user}")
    assert r.status_code == 202
    r = await nova.req("GET", f"/os-quota-sets/{project}?user_id={user}", token)
    assert r.json()["quota_set"]["instances"] == 4
    await nova.boot(token, imageRef=img["id"])


async def test_quota_classes_and_key_pairs(nova: Compute) -> None:
    project, _, token = await nova.project_user()
    r = await nova.req("GET", "/os-quota-class-sets/default", version="2.1")
    q = r.json()["quota_class_set"]
    assert q["id"] == "default" and "server_groups" not in q and "floating_ips" in q
    q = (await nova.req("GET", "/os-quota-class-sets/default",
                        version="2.50")).json()["quota_class_set"]
    assert q["server_groups"] == 10 and "floating_ips" not in q and "injected_files" in q
    fault(await nova.req("GET", "/os-quota-class-sets/default", token), "forbidden", 403)
    r = await nova.req("PUT", "/os-quota-class-sets/default", token,
                       json={"quota_class_set": {"cores": 5}})
    fault(r, "forbidden", 403)
    r = await nova.req("PUT", "/os-quota-class-sets/default", version="2.57",
                       json={"quota_class_set": {"injected_files": 5}})
    assert "'injected_files' was unexpected" in fault(r, "badRequest", 400)
    r = await nova.req("PUT", "/os-quota-class-sets/default", version="2.57",
                       json={"quota_class_set": {"cores": 5, "key_pairs": 1}})
    assert r.status_code == 200, r.text
    q = r.json()["quota_class_set"]
    assert "id" not in q and (q["cores"], q["key_pairs"]) == (5, 1)
    # the new defaults apply to every project without its own limits
    q = (await nova.req("GET", f"/os-quota-sets/{project}", token)).json()["quota_set"]
    assert q["cores"] == 5
    q = (await nova.req("GET", f"/os-quota-sets/{project}/defaults", token)).json()["quota_set"]
    assert q["cores"] == 5
    r = await nova.req("GET", "/limits", token)
    assert r.json()["limits"]["absolute"]["maxTotalCores"] == 5
    pub = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKbVYYDhJH9bEmh4xfrtmVjn5Mo0jFNa1dXlFYUlPWcN "
           "t@x")
    r = await nova.req("POST", "/os-keypairs", token, version="2.92",
                       json={"keypair": {"name": "one", "public_key": pub}})
    assert r.status_code == 201, r.text
    r = await nova.req("POST", "/os-keypairs", token, version="2.92",
                       json={"keypair": {"name": "two", "public_key": pub}})
    assert fault(r, "forbidden", 403) == "Quota exceeded, too many key pairs."
    r = await nova.req("GET", "/os-keypairs", token)
    assert [k["keypair"]["name"] for k in r.json()["keypairs"]] == ["one"]
