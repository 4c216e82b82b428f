"""The driver factory, the fake drivers, and two clouds sharing one kernel."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from onestack.network.dataplane import make_driver
from onestack.network.dataplane.fake import FakeDriver, OffDriver
from onestack.network.dataplane.linux import LinuxDriver
from onestack.network.dataplane.model import DesiredState
from tests.dataplane.conftest import MetadataLog
from tests.dataplane.helpers import Topo, owned_objects


def test_make_driver_kinds(tmp_path: Path, metadata: MetadataLog) -> None:
    assert isinstance(make_driver("fake", owner="abc", state_dir=tmp_path, metadata=metadata),
                      FakeDriver)
    auto = make_driver("auto", owner="abc", state_dir=tmp_path, metadata=metadata)
    assert isinstance(auto, LinuxDriver)  # these tests only run where linux works
    assert auto.status().startswith("data plane: linux (owner abc)")
    with pytest.raises(ValueError):
        make_driver("ovs", owner="abc", state_dir=tmp_path, metadata=metadata)
    with pytest.raises(ValueError):
        make_driver("fake", owner="no spaces", state_dir=tmp_path, metadata=metadata)


async def test_fake_drivers_record_and_activate() -> None:
    topo = Topo()
    subnet = topo.network()
    port = topo.port(subnet)
    router = topo.router(subnet)
    fake = FakeDriver()

    result = await fake.converge(topo.state())

    assert fake.state == topo.state() and result.errors == ()
    assert {port.id, router.interfaces[0].id} <= result.active_ports
    off = OffDriver("not root")
    await off.converge(topo.state())
    assert off.status() == "data plane: off (not root); networks exist in the API only"


async def test_two_owners_share_the_kernel(driver: LinuxDriver, tmp_path: Path, vms,
                                           metadata: MetadataLog) -> None:
    other_owner = uuid.uuid4().hex[:8]
    other = make_driver("linux", owner=other_owner, state_dir=tmp_path / "other",
                        metadata=metadata)
    mine, theirs = Topo(), Topo()
    # the same addresses on both sides: conntrack zones keep them apart
    s_mine, s_theirs = mine.network("10.77.0.0/24"), theirs.network("10.77.0.0/24")
    a = mine.port(s_mine, groups=(mine.default_group(),))
    b = mine.port(s_mine, groups=(a.security_group_ids[0],))
    c = theirs.port(s_theirs, security=False)
    vm_a, vm_b, vm_c = await vms(a), await vms(b), await vms(c)
    try:
        assert (await driver.converge(mine.state())).errors == ()
        assert (await other.converge(theirs.state())).errors == ()
        await vm_a.dhcp()
        await vm_c.dhcp()
        await vm_b.dhcp()
        assert a.fixed_ips[0].ip_address == c.fixed_ips[0].ip_address
        assert await vm_a.reaches(b.fixed_ips[0].ip_address)
        assert await vm_c.reaches("10.77.0.2")  # their DHCP port
        assert await vm_a.reaches("10.77.0.2")  # mine

        await driver.converge(DesiredState(host="test"))  # mine goes, theirs stays

        assert (await owned_objects(other_owner))["namespaces"]
        assert (await vm_c.dhcp())["ip"] == c.fixed_ips[0].ip_address
    finally:
        await other.teardown()
    assert await owned_objects(other_owner) == {"links": [], "namespaces": [], "tables": []}
