"""The other services compute calls, over their public APIs (``runtime.http``):
the image service for the image a server boots, the networking service for its
ports. Calls are made with the caller's token (checks that belong to the user:
may they see this image, this network) or with the compute service user's token
(ports it creates for the server, bound to this host: ``binding:host_id`` is for
admins only)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from onestack.compute.state import ComputeState
from onestack.core.errors import CloudError, ServiceUnavailable

IMAGE = "/image/v2"
NETWORK = "/network/v2.0"

log = logging.getLogger("onestack.compute")


class ExternalError(CloudError):
    status_code = 500


def _client(st: ComputeState) -> httpx.AsyncClient:
    if st.http is None:
        raise ServiceUnavailable("the compute service cannot reach the other services")
    return st.http


async def service_headers(st: ComputeState) -> dict[str, str]:
    if st.session is None:
        raise ServiceUnavailable("the compute service has no service user")
    return dict(await st.session.headers())


def _check(r: httpx.Response, what: str) -> Any:
    if r.status_code >= 400:
        raise ExternalError(f"{what} failed: {r.status_code} {r.text[:300]}")
    return r.json() if r.content else None


async def get_image(st: ComputeState, token: str, image_id: str) -> dict[str, Any] | None:
    """The image as the caller sees it; ``None`` if it does not exist for them."""
    r = await _client(st).get(f"{IMAGE}/images/{image_id}", headers={"X-Auth-Token": token})
    if r.status_code == 404:
        return None
    return _check(r, "reading the image")  # type: ignore[no-any-return]


async def get_network(st: ComputeState, token: str, net_id: str) -> dict[str, Any] | None:
    r = await _client(st).get(f"{NETWORK}/networks/{net_id}", headers={"X-Auth-Token": token})
    if r.status_code == 404:
        return None
    return _check(r, "reading the network")["network"]  # type: ignore[no-any-return]


async def list_networks(st: ComputeState, token: str) -> list[dict[str, Any]]:
    r = await _client(st).get(f"{NETWORK}/networks", headers={"X-Auth-Token": token})
    return _check(r, "listing networks")["networks"]  # type: ignore[no-any-return]


async def get_port(st: ComputeState, headers: dict[str, str],
                   port_id: str) -> dict[str, Any] | None:
    r = await _client(st).get(f"{NETWORK}/ports/{port_id}", headers=headers)
    if r.status_code == 404:
        return None
    return _check(r, "reading the port")["port"]  # type: ignore[no-any-return]


async def find_security_group(st: ComputeState, token: str, name: str) -> str | None:
    """The id of the caller's security group named (or with the id) ``name``."""
    client = _client(st)
    headers = {"X-Auth-Token": token}
    r = await client.get(f"{NETWORK}/security-groups", params={"name": name}, headers=headers)
    groups = _check(r, "listing security groups")["security_groups"]
    if not groups:
        r = await client.get(f"{NETWORK}/security-groups", params={"id": name}, headers=headers)
        groups = _check(r, "listing security groups")["security_groups"]
    return groups[0]["id"] if len(groups) == 1 else None


async def ports_of(st: ComputeState, device_id: str) -> list[dict[str, Any]]:
    r = await _client(st).get(f"{NETWORK}/ports", params={"device_id": device_id},
                              headers=await service_headers(st))
    return _check(r, "listing the server's ports")["ports"]  # type: ignore[no-any-return]


async def create_port(st: ComputeState, body: dict[str, Any]) -> dict[str, Any]:
    r = await _client(st).post(f"{NETWORK}/ports", json={"port": body},
                               headers=await service_headers(st))
    return _check(r, "creating a port")["port"]  # type: ignore[no-any-return]


async def update_port(st: ComputeState, port_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await _client(st).put(f"{NETWORK}/ports/{port_id}", json={"port": body},
                              headers=await service_headers(st))
    return _check(r, "updating a port")["port"]  # type: ignore[no-any-return]


async def delete_port(st: ComputeState, port_id: str) -> None:
    r = await _client(st).delete(f"{NETWORK}/ports/{port_id}", headers=await service_headers(st))
    if r.status_code != 404:
        _check(r, "deleting a port")


async def subnet_names(st: ComputeState, network_ids: set[str]) -> dict[str, str]:
    """network id -> name (the keys of a server's ``addresses``)."""
    out: dict[str, str] = {}
    for net_id in sorted(network_ids):
        r = await _client(st).get(f"{NETWORK}/networks/{net_id}",
                                  headers=await service_headers(st))
        if r.status_code == 200:
            out[net_id] = r.json()["network"]["name"]
    return out


async def service_get(st: ComputeState, path: str,
                      params: dict[str, str] | None = None) -> Any:
    """GET a networking API path (below ``/v2.0``) with the compute service user's
    token; the JSON body, or ``None`` on a 404."""
    r = await _client(st).get(f"{NETWORK}{path}", params=params,
                              headers=await service_headers(st))
    if r.status_code == 404:
        return None
    return _check(r, f"reading {path}")


async def floating_ips_of(st: ComputeState, port_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """port id -> the floating IPs associated with it (``address``,
    ``fixed_ip_address``, ordered by address), asked of the networking service
    with the compute service user's token, as Nova builds its network info."""
    out: dict[str, list[dict[str, str]]] = {p: [] for p in port_ids}
    if not port_ids:
        return out
    r = await _client(st).get(f"{NETWORK}/floatingips", params={"port_id": port_ids},
                              headers=await service_headers(st))
    for fip in _check(r, "listing the server's floating IPs")["floatingips"]:
        if fip.get("port_id") in out and fip.get("floating_ip_address"):
            out[fip["port_id"]].append({"address": fip["floating_ip_address"],
                                        "fixed_ip_address": fip.get("fixed_ip_address") or ""})
    for fips in out.values():
        fips.sort(key=lambda f: f["address"])
    return out


async def with_floating_ips(st: ComputeState,
                            infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``network_info`` entries with the floating IPs of their ports
    (``floating_ips``). Only pre-existing ports can have any when a server is
    built: without one, no call is made; a failing call leaves them without."""
    ids = [i["port_id"] for i in infos if i.get("preexisting") and i.get("port_id")]
    if not ids:
        return infos
    try:
        fips = await floating_ips_of(st, ids)
    except (CloudError, httpx.HTTPError) as exc:
        log.warning("could not read the floating IPs of ports %s: %s", ids, exc)
        return infos
    return add_floating_ips(infos, fips)


def add_floating_ips(infos: list[dict[str, Any]],
                     fips: dict[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """``network_info`` entries whose ``floating_ips`` are those ``fips`` (port id ->
    floating IPs, ``floating_ips_of``) gives their ports; none where it gives none."""
    out = []
    for info in infos:
        info = {k: v for k, v in info.items() if k != "floating_ips"}
        if fips.get(info.get("port_id") or ""):
            info["floating_ips"] = fips[info["port_id"]]
        out.append(info)
    return out
