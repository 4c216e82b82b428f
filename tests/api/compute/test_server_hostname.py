"""A server's host name (``OS-EXT-SRV-ATTR:hostname``, 2.3): sanitised from its name
unless given; a given one (2.90, an FQDN from 2.94) is kept as it is, as Nova
keeps it, whatever its length; the metadata service adds the DHCP domain."""

from __future__ import annotations

from tests.api.compute.conftest import Compute


async def test_given_fqdn_hostname_is_kept_and_name_is_sanitised(nova: Compute) -> None:
    img = await nova.image()
    fqdn = "x" * 52 + "-guest-test.domaintest.com"  # Tempest's: longer than 63
    srv = (await nova.boot(imageRef=img["id"], name="guest-instance-1", hostname=fqdn,
                           version="2.94"))["server"]
    got = await nova.wait(srv["id"], "ACTIVE")
    assert got["OS-EXT-SRV-ATTR:hostname"] == fqdn
    srv = (await nova.boot(imageRef=img["id"], name="Guest Instance_1.domain.com",
                           version="2.94"))["server"]
    got = await nova.wait(srv["id"], "ACTIVE")
    assert got["OS-EXT-SRV-ATTR:hostname"] == "guest-instance-1-domain-com"
