"""``/servers/{id}/os-volume_attachments`` without a block storage service: empty
lists, Nova's schema errors by microversion, its policies and state checks, and
then Nova's 404 for a volume that does not exist; nothing about the server
changes."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.compute.conftest import Compute, fault

VOL = str(uuid.uuid4())


async def _server(nova: Compute, token: str | None = None) -> str:
    img = await nova.image()
    sid = (await nova.boot(token, imageRef=img["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE", token=token)
    return str(sid)


def _path(sid: str, volume_id: str | None = None) -> str:
    return f"/servers/{sid}/os-volume_attachments" + (f"/{volume_id}" if volume_id else "")


async def _attach(nova: Compute, sid: str, body: Any, token: str | None = None,
                  version: str = "2.1") -> Any:
    return await nova.req("POST", _path(sid), token, version=version,
                          json={"volumeAttachment": body} if isinstance(body, dict) else body)


async def test_list_and_show(nova: Compute) -> None:
    sid = await _server(nova)
    for version in ("2.1", "2.89", "2.100"):
        r = await nova.req("GET", _path(sid), version=version)
        assert r.status_code == 200 and r.json() == {"volumeAttachments": []}, r.text
    r = await nova.req("GET", _path(sid) + "?limit=2&offset=1")
    assert r.status_code == 200 and r.json() == {"volumeAttachments": []}
    fault(await nova.req("GET", _path(sid) + "?limit=-1"), "badRequest", 400)
    fault(await nova.req("GET", _path(sid) + "?offset=x"), "badRequest", 400)
    # unknown parameters: ignored before 2.75, refused from it
    assert (await nova.req("GET", _path(sid) + "?x=1", version="2.74")).status_code == 200
    fault(await nova.req("GET", _path(sid) + "?x=1", version="2.75"), "badRequest", 400)
    assert fault(await nova.req("GET", _path(sid, VOL)), "itemNotFound", 404) == (
        f"Instance {sid} is not attached to volume {VOL}")
    missing = str(uuid.uuid4())
    assert fault(await nova.req("GET", _path(missing)), "itemNotFound", 404) == (
        f"Instance {missing} could not be found.")
    # another project's server is not found; a reader of the project may list
    _p, _u, other = await nova.project_user()
    fault(await nova.req("GET", _path(sid), other), "itemNotFound", 404)


async def test_attach_validation_by_microversion(nova: Compute) -> None:
    sid = await _server(nova)
    for body in (None, {}, {"volumeAttachment": None}, {"volumeAttachment": {}, "x": 1}):
        fault(await _attach(nova, sid, body), "badRequest", 400)
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({}, "2.1", "'volumeId' is a required property"),
        ({"volumeId": "nope"}, "2.1", "'nope' is not a 'uuid'"),
        ({"volumeId": 5}, "2.1", "5 is not of type 'string'"),
        ({"volumeId": VOL, "device": "sda"}, "2.1", "does not match"),
        ({"volumeId": VOL, "device": 3}, "2.1", "is not of type 'string', 'null'"),
        ({"volumeId": VOL, "tag": "t"}, "2.48", "Additional properties are not allowed"),
        ({"volumeId": VOL, "tag": "a/b"}, "2.49", "does not match"),
        ({"volumeId": VOL, "delete_on_termination": True}, "2.78",
         "Additional properties are not allowed"),
        ({"volumeId": VOL, "delete_on_termination": "maybe"}, "2.79", "is not one of"),
    ]
    for body, version, message in bad:
        r = await _attach(nova, sid, body, version=version)
        assert message in fault(r, "badRequest", 400), (body, version, r.text)
    # valid bodies reach the volume lookup: no block storage, so no such volume
    good: list[tuple[dict[str, Any], str]] = [
        ({"volumeId": VOL}, "2.1"), ({"volumeId": VOL, "device": None}, "2.1"),
        ({"volumeId": VOL, "device": "/dev/vdb"}, "2.1"),
        ({"volumeId": VOL, "tag": "data"}, "2.49"),
        ({"volumeId": VOL, "delete_on_termination": "yes", "tag": "x"}, "2.100"),
    ]
    for body, version in good:
        r = await _attach(nova, sid, body, version=version)
        assert fault(r, "itemNotFound", 404) == f"Volume {VOL} could not be found.", body


async def test_attach_checks_policy_lock_and_state_first(nova: Compute) -> None:
    member = nova.cloud.demo_token
    sid = await _server(nova, member)
    # a reader of the project may list, not attach
    reader = await nova.demo_reader()
    assert (await nova.req("GET", _path(sid), reader)).status_code == 200
    assert fault(await _attach(nova, sid, {"volumeId": VOL}, reader), "forbidden", 403) == (
        "Policy doesn't allow os_compute_api:os-volumes-attachments:create to be performed.")
    # locked: 409 for the owner; the admin may (and then finds no volume)
    r = await nova.req("POST", f"/servers/{sid}/action", member, json={"lock": None})
    assert r.status_code == 202, r.text
    assert fault(await _attach(nova, sid, {"volumeId": VOL}, member), "conflictingRequest", 409) == (
        f"Instance {sid} is locked")
    fault(await _attach(nova, sid, {"volumeId": VOL}), "itemNotFound", 404)
    r = await nova.req("POST", f"/servers/{sid}/action", member, json={"unlock": None})
    assert r.status_code == 202, r.text
    # stopped is a state Nova attaches in; shelved only from 2.20
    r = await nova.req("POST", f"/servers/{sid}/action", member, json={"os-stop": None})
    assert r.status_code == 202, r.text
    await nova.wait(sid, "SHUTOFF", token=member)
    fault(await _attach(nova, sid, {"volumeId": VOL}, member), "itemNotFound", 404)
    r = await nova.req("POST", f"/servers/{sid}/action", member, json={"shelve": None})
    assert r.status_code == 202, r.text
    srv = await nova.wait(sid, "SHELVED", "SHELVED_OFFLOADED", token=member)
    state = srv["OS-EXT-STS:vm_state"]
    assert fault(await _attach(nova, sid, {"volumeId": VOL}, member, version="2.19"),
                 "conflictingRequest", 409) == (
        f"Cannot 'attach_volume' instance {sid} while it is in vm_state {state}")
    assert fault(await nova.req("DELETE", _path(sid, VOL), member, version="2.19"),
                 "conflictingRequest", 409) == (
        f"Cannot 'detach_volume' instance {sid} while it is in vm_state {state}")
    fault(await _attach(nova, sid, {"volumeId": VOL}, member, version="2.20"),
          "itemNotFound", 404)
    # the refusals recorded nothing against the server
    r = await nova.req("GET", f"/servers/{sid}/os-instance-actions", member)
    assert sorted(a["action"] for a in r.json()["instanceActions"]) == [
        "create", "lock", "shelve", "stop", "unlock"]


async def test_update_and_detach(nova: Compute) -> None:
    _p, _u, member = await nova.project_user()
    sid = await _server(nova, member)
    other = str(uuid.uuid4())
    # before 2.85 a PUT is a swap, Cinder's call: the service role or admins
    body = {"volumeAttachment": {"volumeId": other}}
    fault(await nova.req("PUT", _path(sid, VOL), member, json=body), "forbidden", 403)
    assert fault(await nova.req("PUT", _path(sid, VOL), json=body), "itemNotFound", 404) == (
        f"Volume {VOL} could not be found.")
    fault(await nova.req("PUT", _path(sid, VOL), json={"volumeAttachment": {
        "volumeId": VOL, "tag": "x"}}, version="2.84"), "badRequest", 400)
    # from 2.85 the attachment itself: no volume is attached to update
    same = {"volumeAttachment": {"volumeId": VOL, "delete_on_termination": True,
                                 "serverId": sid, "id": VOL}}
    assert fault(await nova.req("PUT", _path(sid, VOL), member, json=same, version="2.85"),
                 "itemNotFound", 404) == f"No volume Block Device Mapping with id {VOL}."
    bad = {"volumeAttachment": {"volumeId": VOL, "serverId": "x"}}
    fault(await nova.req("PUT", _path(sid, VOL), member, json=bad, version="2.85"),
          "badRequest", 400)
    missing = str(uuid.uuid4())
    fault(await nova.req("PUT", _path(missing, VOL), json=body), "itemNotFound", 404)
    # detach
    assert fault(await nova.req("DELETE", _path(sid, VOL), member), "itemNotFound", 404) == (
        f"Volume {VOL} could not be found.")
    _p2, _u2, stranger = await nova.project_user()
    assert fault(await nova.req("DELETE", _path(sid, VOL), stranger), "itemNotFound", 404) == (
        f"Instance {sid} could not be found.")
    assert (await nova.req("GET", f"/servers/{sid}", member)).json()["server"][
        "os-extended-volumes:volumes_attached"] == []
