"""Availability zones and limits."""

from __future__ import annotations

from tests.api.compute.conftest import Compute, fault


async def test_availability_zones(nova: Compute) -> None:
    r = await nova.req("GET", "/os-availability-zone", nova.cloud.demo_token)
    assert r.status_code == 200
    assert r.json() == {"availabilityZoneInfo": [
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]}
    r = await nova.req("GET", "/os-availability-zone/detail")
    assert r.status_code == 200
    assert r.json()["availabilityZoneInfo"][0]["zoneName"] == "nova"
    r = await nova.req("GET", "/os-availability-zone/detail", nova.cloud.demo_token)
    fault(r, "forbidden", 403)


async def test_limits_by_microversion(nova: Compute) -> None:
    r = await nova.req("GET", "/limits", nova.cloud.demo_token)
    assert r.status_code == 200
    limits = r.json()["limits"]
    assert limits["rate"] == []
    a = limits["absolute"]
    assert (a["maxTotalInstances"], a["maxTotalCores"], a["maxTotalRAMSize"]) == (10, 20, 51200)
    assert a["maxTotalKeypairs"] == 100 and a["maxImageMeta"] == 128
    assert a["maxSecurityGroups"] == 10 and a["totalFloatingIpsUsed"] == 0
    assert a["totalInstancesUsed"] == 0 and a["maxPersonality"] == 5
    a = (await nova.req("GET", "/limits", version="2.36")).json()["limits"]["absolute"]
    assert "maxSecurityGroups" not in a and "totalFloatingIpsUsed" not in a
    assert "maxImageMeta" in a and "maxPersonality" in a
    a = (await nova.req("GET", "/limits", version="2.39")).json()["limits"]["absolute"]
    assert "maxImageMeta" not in a and "maxServerMeta" in a
    a = (await nova.req("GET", "/limits", version="2.57")).json()["limits"]["absolute"]
    assert "maxPersonality" not in a and "maxPersonalitySize" not in a
    assert a["maxServerGroupMembers"] == 10


async def test_limits_of_another_project(nova: Compute) -> None:
    r = await nova.req("GET", "/limits?tenant_id=someone")
    assert r.status_code == 200
    r = await nova.req("GET", "/limits?tenant_id=someone", nova.cloud.demo_token)
    fault(r, "forbidden", 403)
    fault(await nova.req("GET", "/limits?bogus=1", version="2.75"), "badRequest", 400)
