"""The whole path, API to kernel: a cloud in-process with the Linux data plane,
driven only through the Neutron API (as compute and users drive it), with
namespaces standing in for VMs.

Each test's cloud has its own external bridge and CIDR, so it shares the host
with other clouds (a running ``onestack up``, other tests) without touching them.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from onestack.core import config
from onestack.network.app import purge_dataplane
from onestack.network.dataplane.model import FixedIP, PortState
from tests.api.network.conftest import Net
from tests.conftest import Cloud
from tests.dataplane.helpers import Vm, owned_objects

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> config.Settings:
    third = random.randint(0, 255)
    return config.load(
        tmp_path / "data", environ={}, database_url=database_url, port=8780, access_log=False,
        identity={"password_time_cost": 1, "password_memory_cost_kib": 1024},
        compute={"compute_driver": "fake"},  # no guests
        network={"dataplane": "linux", "external_bridge": "brx" + uuid.uuid4().hex[:6],
                 "external_cidr": f"172.29.{third}.0/24", "external_masquerade": False,
                 "host": "cloud-" + uuid.uuid4().hex[:6]},
    )


@pytest.fixture(autouse=True)
async def purge(settings: config.Settings) -> AsyncIterator[None]:
    """After the cloud stops (it leaves its data plane for running VMs), remove
    its kernel objects."""
    yield
    await purge_dataplane(settings.data_dir)


@pytest.fixture
def net(cloud: Cloud) -> Net:
    return Net(cloud)


@pytest.fixture
async def vms(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[Vm]]]:
    made: list[Vm] = []

    async def make(port: dict[str, Any]) -> Vm:
        state = PortState(id=port["id"], network_id=port["network_id"],
                          mac_address=port["mac_address"],
                          fixed_ips=tuple(FixedIP(f["subnet_id"], f["ip_address"])
                                          for f in port["fixed_ips"]),
                          device_owner=port["device_owner"], device_id=port["device_id"])
        vm = Vm(state, tmp_path)
        made.append(vm)
        return await vm.create()

    try:
        yield make
    finally:
        for vm in made:
            await vm.delete()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.2)


async def vm_port(net: Net, network_id: str, host: str, **body: Any) -> dict[str, Any]:
    return await net.create("port", network_id=network_id, device_owner="compute:nova",
                            device_id=str(uuid.uuid4()), **{"binding:host_id": host}, **body)


async def converge(net: Net) -> None:
    """Wait until the agent has caught up with every change so far."""
    st = net.cloud.app.state.runtime.extras["network"]
    await st.agent.converge()


async def test_dhcp_ping_router_floating_ip_and_cleanup(
        net: Net, vms: Callable[[dict[str, Any]], Awaitable[Vm]]) -> None:
    st = net.cloud.app.state.runtime.extras["network"]
    host = st.host
    n1 = await net.network(name="left")
    s1 = await net.subnet(n1["id"], "10.61.1.0/24")
    n2 = await net.network(name="right")
    s2 = await net.subnet(n2["id"], "10.61.2.0/24")
    a = await vm_port(net, n1["id"], host)
    b = await vm_port(net, n1["id"], host)
    c = await vm_port(net, n2["id"], host)
    va, vb, vc = await vms(a), await vms(b), await vms(c)
    await converge(net)

    # DHCP: the addresses the API allocated
    assert (await va.dhcp())["ip"] == a["fixed_ips"][0]["ip_address"]
    assert (await vb.dhcp())["ip"] == b["fixed_ips"][0]["ip_address"]
    assert (await vc.dhcp())["ip"] == c["fixed_ips"][0]["ip_address"]
    assert await va.reaches(b["fixed_ips"][0]["ip_address"])

    async def active() -> bool:
        return (await net.show("port", a["id"]))["status"] == "ACTIVE"

    await wait_for(active)

    # no route between the two networks yet
    assert not await va.ping(c["fixed_ips"][0]["ip_address"])
    r = await net.create("router", name="r1")
    for sub in (s1, s2):
        resp = await net.req("PUT", f"/routers/{r['id']}/add_router_interface",
                             json={"subnet_id": sub["id"]})
        assert resp.status_code == 200, resp.text
    # VMs in different groups? no: the same project's default group allows its members
    await converge(net)
    assert await va.reaches(c["fixed_ips"][0]["ip_address"])

    # a floating IP reachable from the host
    public = (await net.req("GET", "/networks?name=public")).json()["networks"][0]
    resp = await net.req("PUT", f"/routers/{r['id']}", json={"router": {
        "external_gateway_info": {"network_id": public["id"]}}})
    assert resp.status_code == 200, resp.text
    fip = await net.create("floatingip", floating_network_id=public["id"], port_id=a["id"])
    # the default group lets nothing in from outside: allow ICMP
    sg = (await net.req("GET", f"/security-groups?project_id={a['project_id']}&name=default")
          ).json()["security_groups"][0]
    await net.create("security_group_rule", security_group_id=sg["id"], direction="ingress",
                     protocol="icmp", remote_ip_prefix="0.0.0.0/0")
    await converge(net)
    proc = await asyncio.create_subprocess_exec(
        "busybox", "ping", "-c", "2", "-W", "1", fip["floating_ip_address"],
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0

    # everything goes when deleted through the API
    assert (await net.req("DELETE", f"/floatingips/{fip['id']}")).status_code == 204
    assert (await net.req("PUT", f"/routers/{r['id']}", json={"router": {
        "external_gateway_info": None}})).status_code == 200
    for sub in (s1, s2):
        resp = await net.req("PUT", f"/routers/{r['id']}/remove_router_interface",
                             json={"subnet_id": sub["id"]})
        assert resp.status_code == 200, resp.text
    assert (await net.req("DELETE", f"/routers/{r['id']}")).status_code == 204
    for p in (a, b, c):
        assert (await net.req("DELETE", f"/ports/{p['id']}")).status_code == 204
    for n in (n1, n2):
        assert (await net.req("DELETE", f"/networks/{n['id']}")).status_code == 204
    await converge(net)
    owner = st.agent.driver.owner
    left = await owned_objects(owner)
    # only the external network's bridge is left (its network still exists)
    assert left["namespaces"] == []
    assert [name for name, _ in left["links"]] == [st.conf.external_bridge]


async def test_dhcp_answers_a_new_port_without_an_explicit_pass(
        net: Net, vms: Callable[[dict[str, Any]], Awaitable[Vm]]) -> None:
    """The API's write asks the agent (a durable task); nobody calls converge."""
    st = net.cloud.app.state.runtime.extras["network"]
    n = await net.network()
    await net.subnet(n["id"], "10.62.0.0/24")
    p = await vm_port(net, n["id"], st.host)
    vm = await vms(p)
    lease: dict[str, str] = {}
    for _ in range(20):
        try:
            lease = await vm.dhcp()
            break
        except AssertionError:
            await asyncio.sleep(0.5)
    assert lease.get("ip") == p["fixed_ips"][0]["ip_address"]
    assert isinstance(net.cloud.client, httpx.AsyncClient)


async def test_router_interfaces_become_active_v4_and_v6(net: Net) -> None:
    """Tempest waits for a router interface port to be ACTIVE before removing it."""
    n = await net.network()
    s4 = await net.subnet(n["id"], "10.63.0.0/24")
    s6 = await net.subnet(n["id"], "2001:db8:63::/64", ipv6_ra_mode="slaac",
                          ipv6_address_mode="slaac")
    r = await net.create("router")
    ports = []
    for sub in (s4, s6):
        resp = await net.req("PUT", f"/routers/{r['id']}/add_router_interface",
                             json={"subnet_id": sub["id"]})
        assert resp.status_code == 200, resp.text
        ports.append(resp.json()["port_id"])

    async def active() -> bool:
        return all([(await net.show("port", p))["status"] == "ACTIVE" for p in ports])

    await wait_for(active)


async def test_admin_down_router_has_no_namespace_but_bound_ports(net: Net) -> None:
    n = await net.network()
    s4 = await net.subnet(n["id"], "10.64.0.0/24")
    r = await net.create("router", admin_state_up=False)
    resp = await net.req("PUT", f"/routers/{r['id']}/add_router_interface",
                         json={"subnet_id": s4["id"]})
    port = resp.json()["port_id"]

    async def active() -> bool:
        return (await net.show("port", port))["status"] == "ACTIVE"

    await wait_for(active)
    proc = await asyncio.create_subprocess_exec("ip", "netns", "list",
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert f"qrouter-{r['id']}" not in out.decode()
