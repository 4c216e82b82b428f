"""The metadata API (/compute/metadata): the proxy's signature, the OpenStack and
EC2 documents from a real server and its real ports, and config drive files."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx

from onestack.compute.service import metadata as md
from onestack.core.auth import METADATA_SECRET, instance_signature
from onestack.core.files import load_or_create_secret
from onestack.network.agent import metadata_handler
from tests.api.compute.conftest import Compute

PUBKEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
          "me@example")
USER_DATA = b"#cloud-config\nhostname: hello\n"


def secret(nova: Compute) -> bytes:
    return load_or_create_secret(nova.cloud.settings.path(*METADATA_SECRET)).encode()


async def get(nova: Compute, path: str, instance_id: str, tenant_id: str, *,
              signature: str | None = None) -> httpx.Response:
    headers = {"X-Instance-ID": instance_id, "X-Tenant-ID": tenant_id,
               "X-Forwarded-For": "10.0.0.5",
               "X-Instance-ID-Signature": signature if signature is not None
               else instance_signature(secret(nova), instance_id)}
    return await nova.cloud.client.get("/compute/metadata" + path, headers=headers)


async def static_network(nova: Compute, token: str) -> dict[str, Any]:
    """A network whose subnet has no DHCP, two DNS servers and a host route."""
    h = {"X-Auth-Token": token}
    c = nova.cloud.client
    r = await c.post("/network/v2.0/networks", headers=h, json={"network": {"name": "md-net"}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    r = await c.post("/network/v2.0/subnets", headers=h, json={"subnet": {
        "network_id": net["id"], "cidr": "10.20.0.0/24", "ip_version": 4,
        "enable_dhcp": False, "dns_nameservers": ["10.20.0.2", "10.20.0.3"],
        "host_routes": [{"destination": "192.168.50.0/24", "nexthop": "10.20.0.254"}]}})
    assert r.status_code == 201, r.text
    return {"network": net, "subnet": r.json()["subnet"]}


async def booted(nova: Compute) -> dict[str, Any]:
    """The demo project's ACTIVE server with a key pair, user data, metadata and a
    port on a static network."""
    demo = nova.cloud.demo_token
    r = await nova.req("POST", "/os-keypairs", demo, json={
        "keypair": {"name": "mdkey", "public_key": PUBKEY}})
    assert r.status_code == 200, r.text
    img = await nova.image()
    netinfo = await static_network(nova, demo)
    body = await nova.boot(demo, imageRef=img["id"], key_name="mdkey", name="Web Server",
                           networks=[{"uuid": netinfo["network"]["id"]}],
                           user_data=base64.b64encode(USER_DATA).decode(),
                           metadata={"role": "web"}, security_groups=[{"name": "default"}])
    srv = await nova.wait(body["server"]["id"], "ACTIVE", token=demo)
    port = (await nova.ports(device_id=srv["id"]))[0]
    return {"server": srv, "port": port, **netinfo, "image": img}


async def test_signature_headers_and_unknown_instances(nova: Compute) -> None:
    demo = nova.cloud.demo_token
    img = await nova.image()
    srv = (await nova.boot(demo, imageRef=img["id"]))["server"]
    await nova.wait(srv["id"], "ACTIVE", token=demo)
    tenant = (await nova.req("GET", f"/servers/{srv['id']}", demo)).json()["server"]["tenant_id"]
    ok = await get(nova, "/openstack", srv["id"], tenant)
    assert ok.status_code == 200 and ok.text.splitlines()[-1] == "latest"
    assert ok.text.splitlines()[:-1] == list(md.OPENSTACK_VERSIONS)
    # no token needed, but the proxy's headers are
    r = await nova.cloud.client.get("/compute/metadata/openstack")
    assert r.status_code == 400 and "X-Instance-ID" in r.text
    r = await nova.cloud.client.get("/compute/metadata/openstack", headers={
        "X-Instance-ID": srv["id"], "X-Instance-ID-Signature": "x"})
    assert r.status_code == 400 and "X-Tenant-ID" in r.text
    bad = instance_signature(b"another secret", srv["id"])
    assert (await get(nova, "/openstack", srv["id"], tenant, signature=bad)).status_code == 403
    assert (await get(nova, "/openstack", srv["id"], tenant, signature="")).status_code == 403
    # a signature is for one instance id only
    other = str(uuid.uuid4())
    r = await get(nova, "/openstack", other, tenant, signature=instance_signature(secret(nova),
                                                                              srv["id"]))
    assert r.status_code == 403
    assert (await get(nova, "/openstack", other, tenant)).status_code == 404
    assert (await get(nova, "/openstack", srv["id"], "another-project")).status_code == 404
    assert (await get(nova, "/openstack/2009-01-01/meta_data.json", srv["id"],
                      tenant)).status_code == 404
    assert (await get(nova, "/openstack/latest/nothing", srv["id"], tenant)).status_code == 404
    # no user data: not listed, 404; no ports: an empty network_data
    r = await get(nova, "/openstack/latest", srv["id"], tenant)
    assert r.text.splitlines() == ["meta_data.json", "password", "vendor_data.json",
                                   "network_data.json", "vendor_data2.json"]
    assert (await get(nova, "/openstack/latest/user_data", srv["id"], tenant)).status_code == 404
    assert (await get(nova, "/latest/user-data", srv["id"], tenant)).status_code == 404
    r = await get(nova, "/openstack/latest/network_data.json", srv["id"], tenant)
    assert r.json() == {}
    doc = (await get(nova, "/openstack/latest/meta_data.json", srv["id"], tenant)).json()
    assert "meta" not in doc and "public_keys" not in doc and doc["uuid"] == srv["id"]
    # a deleted server has no metadata
    assert (await nova.req("DELETE", f"/servers/{srv['id']}", demo)).status_code == 204
    await nova.gone(srv["id"], demo)
    assert (await get(nova, "/openstack", srv["id"], tenant)).status_code == 404


async def test_openstack_documents_from_real_ports(nova: Compute) -> None:
    b = await booted(nova)
    srv, port, subnet = b["server"], b["port"], b["subnet"]
    sid, tenant = srv["id"], srv["tenant_id"]
    r = await get(nova, "/openstack/latest", sid, tenant)
    assert "user_data" in r.text.splitlines()
    r = await get(nova, "/openstack/latest/meta_data.json", sid, tenant)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["uuid"] == sid and doc["name"] == "Web Server"
    assert doc["hostname"] == "web-server.novalocal"
    assert doc["project_id"] == tenant and doc["availability_zone"] == "nova"
    assert doc["launch_index"] == 0 and doc["meta"] == {"role": "web"}
    assert doc["public_keys"] == {"mdkey": PUBKEY}
    assert doc["keys"] == [{"name": "mdkey", "type": "ssh", "data": PUBKEY}]
    assert doc["devices"] == [] and len(base64.b64decode(doc["random_seed"])) == 512
    # an old version has the fields of its time
    old = (await get(nova, "/openstack/2012-08-10/meta_data.json", sid, tenant)).json()
    assert "random_seed" not in old and "project_id" not in old and "keys" not in old
    r = await get(nova, "/openstack/latest/user_data", sid, tenant)
    assert r.status_code == 200 and r.content == USER_DATA
    for name in ("vendor_data.json", "vendor_data2.json"):
        assert (await get(nova, f"/openstack/latest/{name}", sid, tenant)).json() == {}
    net = (await get(nova, "/openstack/latest/network_data.json", sid, tenant)).json()
    ip = port["fixed_ips"][0]["ip_address"]
    link = "tap" + port["id"][:11]
    assert net["links"] == [{"id": link, "vif_id": port["id"],
                             "type": port.get("binding:vif_type") or "unbound",
                             "mtu": b["network"].get("mtu"),
                             "ethernet_mac_address": port["mac_address"]}]
    assert net["networks"] == [{
        "id": "network0", "type": "ipv4", "link": link, "network_id": b["network"]["id"],
        "ip_address": ip, "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                    "gateway": subnet["gateway_ip"]},
                   {"network": "192.168.50.0", "netmask": "255.255.255.0",
                    "gateway": "10.20.0.254"}],
        "services": [{"type": "dns", "address": "10.20.0.2"},
                     {"type": "dns", "address": "10.20.0.3"}]}]
    assert net["services"] == [{"type": "dns", "address": "10.20.0.2"},
                               {"type": "dns", "address": "10.20.0.3"}]


async def test_ec2_tree(nova: Compute) -> None:
    b = await booted(nova)
    srv, port = b["server"], b["port"]
    sid, tenant = srv["id"], srv["tenant_id"]

    async def text(path: str) -> str:
        r = await get(nova, path, sid, tenant)
        assert r.status_code == 200, (path, r.text)
        return r.text

    assert (await text("/")).splitlines() == [*md.EC2_VERSIONS, "latest"]
    assert (await text("/latest")).splitlines() == ["meta-data/", "user-data"]
    assert (await text("/latest/user-data")).encode() == USER_DATA
    listing = (await text("/latest/meta-data/")).splitlines()
    assert listing == sorted(listing)
    for entry in ("ami-id", "hostname", "instance-id", "instance-type", "local-ipv4",
                  "placement/", "public-ipv4", "public-keys/", "reservation-id",
                  "security-groups", "block-device-mapping/"):
        assert entry in listing
    assert await text("/latest/meta-data/local-ipv4") == port["fixed_ips"][0]["ip_address"]
    assert await text("/latest/meta-data/public-ipv4") == ""
    assert await text("/latest/meta-data/hostname") == "web-server.novalocal"
    assert await text("/latest/meta-data/instance-type") == "m1.nano"
    assert (await text("/latest/meta-data/instance-id")).startswith("i-")
    assert (await text("/latest/meta-data/ami-id")).startswith("ami-")
    assert await text("/latest/meta-data/security-groups") == "default"
    assert await text("/latest/meta-data/placement/availability-zone") == "nova"
    assert await text("/latest/meta-data/public-keys/") == "0=mdkey"
    assert await text("/latest/meta-data/public-keys/0/") == "openssh-key"
    assert await text("/latest/meta-data/public-keys/0/openssh-key") == PUBKEY
    reservation = await text("/2009-04-04/meta-data/reservation-id")
    assert reservation.startswith("r-")
    assert await text("/ec2/latest/meta-data/reservation-id") == reservation
    # an old version lacks the later fields
    assert "placement/" not in (await text("/1.0/meta-data/")).splitlines()
    for missing in ("/latest/meta-data/nothing", "/2000-01-01/meta-data/",
                    "/latest/meta-data/hostname/more"):
        assert (await get(nova, missing, sid, tenant)).status_code == 404


async def test_through_the_networking_proxy_with_a_floating_ip(nova: Compute) -> None:
    """The networking service's proxy (its signature and headers) reaches this API;
    a floating IP on the server's port is its public-ipv4."""
    b = await booted(nova)
    srv, port = b["server"], b["port"]
    cloud = nova.cloud
    admin = {"X-Auth-Token": cloud.admin_token}
    demo = {"X-Auth-Token": cloud.demo_token}
    nets = (await cloud.client.get("/network/v2.0/networks?router:external=true",
                                   headers=admin)).json()["networks"]
    assert nets, "the test cloud has an external network"
    r = await cloud.client.post("/network/v2.0/routers", headers=demo, json={"router": {
        "name": "r1", "external_gateway_info": {"network_id": nets[0]["id"]}}})
    assert r.status_code == 201, r.text
    router = r.json()["router"]
    r = await cloud.client.put(f"/network/v2.0/routers/{router['id']}/add_router_interface",
                               headers=demo, json={"subnet_id": b["subnet"]["id"]})
    assert r.status_code == 200, r.text
    r = await cloud.client.post("/network/v2.0/floatingips", headers=demo, json={
        "floatingip": {"floating_network_id": nets[0]["id"], "port_id": port["id"]}})
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]["floating_ip_address"]

    runtime = cloud.app.state.runtime
    proxy = metadata_handler(runtime.extras["network"], runtime.http, secret(nova),
                             "/compute/metadata")
    ip = port["fixed_ips"][0]["ip_address"]
    status, headers, body = await proxy(b["network"]["id"], ip, "GET",
                                        "/latest/meta-data/public-ipv4", {}, b"")
    assert (status, body.decode()) == (200, fip)
    status, headers, body = await proxy(b["network"]["id"], ip, "GET",
                                        "/openstack/latest/meta_data.json", {}, b"")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["uuid"] == srv["id"]
    status, _, _ = await proxy(b["network"]["id"], "10.20.0.99", "GET", "/latest", {}, b"")
    assert status == 404


def test_config_drive_files_render_the_same_documents() -> None:
    from onestack.compute.models import Instance

    inst = Instance(
        id=10, uuid=str(uuid.uuid4()), project_id="p1", user_id="u1", display_name="vm",
        hostname="vm", reservation_id="r-1", launch_index=0, image_ref=str(uuid.uuid4()),
        image={}, flavor={"name": "m1.tiny"}, vcpus=1, memory_mb=512, root_gb=1,
        ephemeral_gb=0, key_name="k", key_data=PUBKEY,
        user_data=base64.b64encode(USER_DATA).decode(), metadata_={"a": "b"}, tags=[],
        security_groups=["default"], network_info=[], availability_zone="nova",
        vm_state="active")
    port = {"id": "p" * 36, "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}]}
    net = md.NetworkView(ports=[port], subnets={"s1": {"cidr": "10.0.0.0/24",
                                                       "gateway_ip": "10.0.0.1"}},
                         networks={"n1": {"mtu": 1450}},
                         floating_ips={port["id"]: ["203.0.113.7"]},
                         dhcp_servers={"s1": "10.0.0.2"})
    files = md.InstanceMetadata(inst, net).config_drive_files()
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["uuid"] == inst.uuid and meta["meta"] == {"a": "b"}
    assert files["openstack/latest/user_data"] == USER_DATA
    nd = json.loads(files["openstack/latest/network_data.json"])
    # a subnet with a DHCP server is announced as such, as Nova does
    assert nd["networks"] == [{"id": "network0", "link": "tap" + "p" * 11,
                               "network_id": "n1", "type": "ipv4_dhcp"}]
    assert nd["links"][0]["mtu"] == 1450
    assert "openstack/2012-08-10/meta_data.json" in files
    assert "openstack/2012-08-10/network_data.json" not in files
    ec2 = json.loads(files["ec2/latest/meta-data.json"])
    assert ec2["public-keys"] == {"0": {"openssh-key": PUBKEY}}
    assert ec2["public-ipv4"] == "203.0.113.7" and ec2["local-ipv4"] == "10.0.0.5"
    assert ec2["instance-id"] == "i-0000000a"
    assert files["ec2/latest/user-data"] == USER_DATA
