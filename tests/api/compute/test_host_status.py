"""``host_status`` (2.16): from the ``nova-compute`` service of the server's host,
as Nova derives it (forced down ``DOWN``, disabled ``MAINTENANCE``, beating
``UP``, silent past ``service_down_time`` ``UNKNOWN``, no host ""), shown by the
``show:host_status`` rule, or only when ``UNKNOWN`` by
``show:host_status:unknown-only``; a listing looks the services up once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from onestack.compute.models import Instance, Service, utcnow
from onestack.compute.service import hosts as hosts_svc
from tests.api.compute.conftest import Compute

GHOST = "ghost-host"  # a second compute host that only exists in the database


async def _show(nova: Compute, server_id: str, token: str | None = None,
                version: str = "2.16") -> dict[str, Any]:
    r = await nova.req("GET", f"/servers/{server_id}", token, version=version)
    assert r.status_code == 200, r.text
    return r.json()["server"]  # type: ignore[no-any-return]


async def _service(nova: Compute, host: str) -> dict[str, Any]:
    r = await nova.req("GET", "/os-services", version="2.53",
                       params={"binary": "nova-compute", "host": host})
    assert r.status_code == 200, r.text
    (svc,) = r.json()["services"]
    return svc  # type: ignore[no-any-return]


async def test_host_status_follows_the_compute_service(nova: Compute) -> None:
    image = await nova.image()
    sid = (await nova.boot(imageRef=image["id"]))["server"]["id"]
    await nova.wait(sid, "ACTIVE")
    host = nova.state.host
    assert (await _show(nova, sid))["host_status"] == "UP"
    assert "host_status" not in await _show(nova, sid, version="2.15")
    # the owner (not admin) does not see it
    demo_sid = (await nova.boot(nova.cloud.demo_token, imageRef=image["id"]))["server"]["id"]
    await nova.wait(demo_sid, "ACTIVE")
    assert "host_status" not in await _show(nova, demo_sid, nova.cloud.demo_token)

    svc = await _service(nova, host)
    base = f"/os-services/{svc['id']}"
    r = await nova.req("PUT", base, version="2.53",
                       json={"status": "disabled", "disabled_reason": "maint"})
    assert r.status_code == 200, r.text
    assert (await _show(nova, sid))["host_status"] == "MAINTENANCE"
    # forced down wins over disabled
    r = await nova.req("PUT", base, version="2.53", json={"forced_down": True})
    assert r.status_code == 200, r.text
    assert (await _show(nova, sid))["host_status"] == "DOWN"
    r = await nova.req("PUT", base, version="2.53", json={"status": "enabled"})
    assert r.status_code == 200, r.text
    assert (await _show(nova, sid))["host_status"] == "DOWN"
    r = await nova.req("PUT", base, version="2.53", json={"forced_down": False})
    assert r.status_code == 200, r.text
    assert (await _show(nova, sid))["host_status"] == "UP"

    # a host whose heartbeat stopped longer than service_down_time ago: UNKNOWN;
    # a host without a nova-compute service, and no host at all: ""
    old = utcnow() - timedelta(seconds=nova.state.conf.service_down_time + 60)
    async with nova.state.db.write() as s:
        s.add(Service(uuid=str(uuid.uuid4()), host=GHOST, binary="nova-compute",
                      topic="compute", disabled=False, forced_down=False,
                      created_at=old, updated_at=old))
        await s.execute(update(Instance).where(Instance.uuid == sid).values(host=GHOST))
    assert (await _show(nova, sid))["host_status"] == "UNKNOWN"
    async with nova.state.db.write() as s:
        await s.execute(update(Instance).where(Instance.uuid == sid).values(host="nowhere"))
    assert (await _show(nova, sid))["host_status"] == ""
    async with nova.state.db.write() as s:
        await s.execute(update(Instance).where(Instance.uuid == sid).values(host=None))
    assert (await _show(nova, sid))["host_status"] == ""
    async with nova.state.db.write() as s:
        await s.execute(update(Instance).where(Instance.uuid == sid).values(host=GHOST))

    # update's answer keeps it out before 2.75, has it from 2.75
    r = await nova.req("PUT", f"/servers/{sid}", version="2.74",
                       json={"server": {"name": "renamed"}})
    assert r.status_code == 200 and "host_status" not in r.json()["server"], r.text
    r = await nova.req("PUT", f"/servers/{sid}", version="2.75",
                       json={"server": {"name": "renamed"}})
    assert r.status_code == 200 and r.json()["server"]["host_status"] == "UNKNOWN", r.text


async def test_listing_looks_services_up_once(nova: Compute,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    image = await nova.image()
    ids = [(await nova.boot(imageRef=image["id"]))["server"]["id"] for _ in range(3)]
    for sid in ids:
        await nova.wait(sid, "ACTIVE")
    old = utcnow() - timedelta(hours=1)
    async with nova.state.db.write() as s:
        s.add(Service(uuid=str(uuid.uuid4()), host=GHOST, binary="nova-compute",
                      topic="compute", disabled=False, forced_down=False,
                      created_at=old, updated_at=old))
        await s.execute(update(Instance).where(Instance.uuid == ids[0]).values(host=GHOST))
    calls: list[set[str]] = []
    real = hosts_svc.host_statuses

    async def counted(st: Any, hosts: Any) -> dict[str, str]:
        hosts = set(hosts)
        calls.append(hosts)
        return await real(st, hosts)

    monkeypatch.setattr(hosts_svc, "host_statuses", counted)
    r = await nova.req("GET", "/servers/detail", version="2.16")
    assert r.status_code == 200, r.text
    got = {s["id"]: s["host_status"] for s in r.json()["servers"] if s["id"] in ids}
    assert got == {ids[0]: "UNKNOWN", ids[1]: "UP", ids[2]: "UP"}
    assert calls == [{GHOST, nova.state.host}]
    # the brief listing and older microversions render none and look nothing up
    calls.clear()
    r = await nova.req("GET", "/servers", version="2.16")
    assert r.status_code == 200 and all("host_status" not in s for s in r.json()["servers"])
    r = await nova.req("GET", "/servers/detail", version="2.15")
    assert r.status_code == 200 and all("host_status" not in s for s in r.json()["servers"])
    assert calls == [] or calls == [set()]
    # a caller without the rule: no field, no hosts asked about
    calls.clear()
    r = await nova.req("GET", "/servers/detail", nova.cloud.demo_token, version="2.16")
    assert r.status_code == 200 and all("host_status" not in s for s in r.json()["servers"])
    assert all(not c for c in calls)


async def test_unknown_only_rule(nova: Compute) -> None:
    """``show:host_status:unknown-only`` lets a caller see the field only while
    it is ``UNKNOWN``."""
    enforcer = nova.state.enforcer
    saved = enforcer._overrides
    rule = "os_compute_api:servers:show:host_status:unknown-only"
    enforcer._overrides = {**saved, rule: "role:member"}
    enforcer.register({})
    try:
        demo = nova.cloud.demo_token
        image = await nova.image()
        sid = (await nova.boot(demo, imageRef=image["id"]))["server"]["id"]
        await nova.wait(sid, "ACTIVE")
        assert "host_status" not in await _show(nova, sid, demo)
        old = utcnow() - timedelta(hours=1)
        async with nova.state.db.write() as s:
            s.add(Service(uuid=str(uuid.uuid4()), host=GHOST, binary="nova-compute",
                          topic="compute", disabled=False, forced_down=False,
                          created_at=old, updated_at=old))
            await s.execute(update(Instance).where(Instance.uuid == sid).values(host=GHOST))
        assert (await _show(nova, sid, demo))["host_status"] == "UNKNOWN"
        r = await nova.req("GET", "/servers/detail", demo, version="2.16")
        (listed,) = [s for s in r.json()["servers"] if s["id"] == sid]
        assert listed["host_status"] == "UNKNOWN"
    finally:
        enforcer._overrides = saved
        enforcer.register({})
