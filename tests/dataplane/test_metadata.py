"""The metadata service at 169.254.169.254, through DHCP's classless route (real kernel)."""

from __future__ import annotations

from onestack.network.dataplane.linux import LinuxDriver
from onestack.network.dataplane.model import DesiredState
from tests.dataplane.conftest import MetadataLog
from tests.dataplane.helpers import Topo

URL = "http://169.254.169.254/latest/meta-data/instance-id"


async def test_vm_reaches_metadata_callable(driver: LinuxDriver, vms,
                                            metadata: MetadataLog) -> None:
    topo = Topo()
    subnet = topo.network()
    port = topo.port(subnet, groups=(topo.default_group(),))  # filtered: must still work
    vm = await vms(port)
    assert (await driver.converge(topo.state())).errors == ()
    await vm.dhcp()

    rc, out, err = await vm.sh("busybox", "wget", "-q", "-O-", URL)

    assert rc == 0, err
    assert out == f"i-{subnet.network_id[:8]}"
    assert metadata.calls == [(subnet.network_id, port.fixed_ips[0].ip_address, "GET",
                               "/latest/meta-data/instance-id")]
    rc, _, err = await vm.sh("busybox", "wget", "-q", "-O-", "http://169.254.169.254/nope")
    assert rc != 0 and "404" in err


async def test_metadata_server_goes_with_network(driver: LinuxDriver, vms) -> None:
    topo = Topo()
    subnet = topo.network()
    vm = await vms(topo.port(subnet, security=False))
    await driver.converge(topo.state())
    await vm.dhcp()
    assert (await vm.sh("busybox", "wget", "-q", "-O-", URL))[0] == 0

    await driver.converge(DesiredState(host="test"))

    assert driver._servers == {}
    try:
        rc = (await vm.sh("busybox", "wget", "-q", "-O-", URL, timeout=2))[0]
    except TimeoutError:  # nothing answers at all any more
        rc = -1
    assert rc != 0
