"""Ansible's openstack.cloud collection against ``onestack up`` (the session's one
server process, the default ``fake`` compute driver): a real ``ansible-playbook``
on localhost makes a key pair, a network with a subnet, a router on it with the
external network ``public`` as its gateway, a security group with a rule, an
image, a server on the network (``wait: true``), reads the server back with
``server_info``, gives it a floating IP, runs the network, subnet, router, rule
and server tasks again (nothing may change), stores an object in a container,
and then deletes everything with ``state: absent``. As the demo project's member ("onestack"), as a user
would; afterwards openstacksdk checks that nothing the playbook made is left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openstack
import pytest

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow

MEMBER = "onestack"
CIDR = "10.78.0.0/24"

PLAYBOOK = """\
- name: OneStack through openstack.cloud
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/openstack.cloud.openstack:
      cloud: "{{ cloud }}"
  tasks:
    - name: Key pair
      openstack.cloud.keypair:
        name: "{{ prefix }}-key"
      register: key

    - name: The key pair's private key comes back once
      ansible.builtin.assert:
        that:
          - key.keypair.name == prefix ~ '-key'
          - "'PRIVATE KEY' in key.keypair.private_key"

    - name: Network
      openstack.cloud.network:
        name: "{{ prefix }}-net"
      register: net

    - name: Subnet
      openstack.cloud.subnet:
        name: "{{ prefix }}-sub"
        network: "{{ prefix }}-net"
        cidr: "{{ cidr }}"
      register: sub

    - name: Router on the subnet, with public as its gateway
      openstack.cloud.router:
        name: "{{ prefix }}-router"
        network: public
        interfaces:
          - "{{ prefix }}-sub"
      register: router

    - name: The router has its gateway on public
      ansible.builtin.assert:
        that:
          - router.router.external_gateway_info.network_id is truthy
          - (router.router.external_gateway_info.external_fixed_ips | length) == 1

    - name: Security group
      openstack.cloud.security_group:
        name: "{{ prefix }}-sg"
        description: ssh in

    - name: Security group rule
      openstack.cloud.security_group_rule:
        security_group: "{{ prefix }}-sg"
        protocol: tcp
        port_range_min: 22
        port_range_max: 22
        remote_ip_prefix: 0.0.0.0/0

    - name: Image
      openstack.cloud.image:
        name: "{{ prefix }}-img"
        filename: "{{ disk }}"
        disk_format: raw
        container_format: bare
      register: image

    - name: Server
      openstack.cloud.server:
        name: "{{ prefix }}-vm"
        image: "{{ prefix }}-img"
        flavor: m1.tiny
        network: "{{ prefix }}-net"
        key_name: "{{ prefix }}-key"
        security_groups:
          - "{{ prefix }}-sg"
        auto_ip: false
        wait: true
        timeout: 120
      register: vm

    - name: Server info
      openstack.cloud.server_info:
        name: "{{ prefix }}-vm"
      register: info

    - name: The server is ACTIVE with an address on the network
      ansible.builtin.assert:
        that:
          - (info.servers | length) == 1
          - info.servers[0].id == vm.server.id
          - info.servers[0].name == prefix ~ '-vm'
          - info.servers[0].status == 'ACTIVE'
          - info.servers[0].key_name == prefix ~ '-key'
          - (info.servers[0].addresses[prefix ~ '-net'] | length) == 1
          - info.servers[0].addresses[prefix ~ '-net'][0].addr.startswith('10.78.0.')
          - info.servers[0].security_groups | map(attribute='name') | list == [prefix ~ '-sg']

    - name: Floating IP from public on the server
      openstack.cloud.floating_ip:
        server: "{{ prefix }}-vm"
        network: public
        nat_destination: "{{ prefix }}-net"
        wait: true
        timeout: 60
      register: fip

    - name: The floating IP points at the server's address
      ansible.builtin.assert:
        that:
          - fip.floating_ip.floating_ip_address is truthy
          - fip.floating_ip.fixed_ip_address == info.servers[0].addresses[prefix ~ '-net'][0].addr

    - name: Again, the network
      openstack.cloud.network:
        name: "{{ prefix }}-net"
      register: again_net

    - name: Again, the subnet
      openstack.cloud.subnet:
        name: "{{ prefix }}-sub"
        network: "{{ prefix }}-net"
        cidr: "{{ cidr }}"
      register: again_sub

    - name: Again, the router
      openstack.cloud.router:
        name: "{{ prefix }}-router"
        network: public
        interfaces:
          - "{{ prefix }}-sub"
      register: again_router

    - name: Again, the security group rule
      openstack.cloud.security_group_rule:
        security_group: "{{ prefix }}-sg"
        protocol: tcp
        port_range_min: 22
        port_range_max: 22
        remote_ip_prefix: 0.0.0.0/0
      register: again_rule

    - name: Again, the server
      openstack.cloud.server:
        name: "{{ prefix }}-vm"
        image: "{{ prefix }}-img"
        flavor: m1.tiny
        network: "{{ prefix }}-net"
        key_name: "{{ prefix }}-key"
        security_groups:
          - "{{ prefix }}-sg"
        auto_ip: false
        wait: true
        timeout: 120
      register: again_vm

    - name: A second run changes nothing
      ansible.builtin.assert:
        that:
          - not again_net.changed
          - not again_sub.changed
          - not again_router.changed
          - not again_rule.changed
          - not again_vm.changed
          - again_vm.server.id == vm.server.id

    - name: Container
      openstack.cloud.object_container:
        name: "{{ prefix }}-box"

    - name: Object
      openstack.cloud.object:
        container: "{{ prefix }}-box"
        name: hello.txt
        filename: "{{ disk }}"

    - name: Container info
      openstack.cloud.object_containers_info:
        name: "{{ prefix }}-box"
      register: box

    - name: The container holds the object
      ansible.builtin.assert:
        that:
          - box.containers[0].object_count == 1
          - box.containers[0].bytes_used == 4096

    - name: Delete the object
      openstack.cloud.object:
        container: "{{ prefix }}-box"
        name: hello.txt
        state: absent

    - name: Delete the container
      openstack.cloud.object_container:
        name: "{{ prefix }}-box"
        state: absent

    - name: Release the floating IP
      openstack.cloud.floating_ip:
        server: "{{ prefix }}-vm"
        network: public
        floating_ip_address: "{{ fip.floating_ip.floating_ip_address }}"
        purge: true
        state: absent

    - name: Delete the server
      openstack.cloud.server:
        name: "{{ prefix }}-vm"
        state: absent
        wait: true
        timeout: 120

    - name: Delete the image
      openstack.cloud.image:
        name: "{{ prefix }}-img"
        state: absent

    - name: Delete the security group
      openstack.cloud.security_group:
        name: "{{ prefix }}-sg"
        state: absent

    - name: Delete the router
      openstack.cloud.router:
        name: "{{ prefix }}-router"
        state: absent

    - name: Delete the subnet
      openstack.cloud.subnet:
        name: "{{ prefix }}-sub"
        state: absent

    - name: Delete the network
      openstack.cloud.network:
        name: "{{ prefix }}-net"
        state: absent

    - name: Delete the key pair
      openstack.cloud.keypair:
        name: "{{ prefix }}-key"
        state: absent
"""


# openstack.cloud 2.5.0 (the one in the ``ansible`` 12 bundle) reads the SDK's
# version as ``openstack.version.__version__`` after a bare ``import openstack``;
# openstacksdk 4.x no longer imports that (deprecated) submodule from its package,
# so every module fails with "module 'openstack' has no attribute 'version'"
# (a collection/SDK mismatch, not the cloud's). The modules' interpreter imports it
# first through this sitecustomize.
SITECUSTOMIZE = """\
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        import openstack.version  # noqa: F401
    except ImportError:
        pass
"""


def connect(server: Server, cloud: str = MEMBER) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def leftovers(conn: openstack.connection.Connection, prefix: str,
              old_ips: set[str]) -> list[str]:
    """What of the playbook's resources (all named ``prefix-...``, but the floating
    IP: one not in ``old_ips``) still exists."""
    found = [f"floating IP {ip.floating_ip_address}" for ip in conn.network.ips()
             if ip.id not in old_ips]
    found += [f"server {s.name}" for s in conn.compute.servers() if s.name.startswith(prefix)]
    found += [f"image {i.name}" for i in conn.image.images() if i.name.startswith(prefix)]
    found += [f"keypair {k.name}" for k in conn.compute.keypairs() if k.name.startswith(prefix)]
    net = conn.network
    for kind, items in (("router", net.routers()), ("subnet", net.subnets()),
                        ("network", net.networks()), ("security group", net.security_groups())):
        found += [f"{kind} {x.name}" for x in items if (x.name or "").startswith(prefix)]
    found += [f"container {c.name}" for c in conn.object_store.containers()
              if c.name.startswith(prefix)]
    return found


def clean_up(conn: openstack.connection.Connection, prefix: str, old_ips: set[str]) -> None:
    """Best effort, after a failed playbook: the other client tests share this cloud."""
    for ip in conn.network.ips():
        if ip.id not in old_ips:
            conn.network.delete_ip(ip)
    for s in conn.compute.servers():
        if s.name.startswith(prefix):
            conn.compute.delete_server(s)
            conn.compute.wait_for_delete(s, wait=60)
    for c in conn.object_store.containers():
        if c.name.startswith(prefix):
            for o in conn.object_store.objects(c.name):
                conn.object_store.delete_object(o, container=c.name)
            conn.object_store.delete_container(c.name)
    for i in conn.image.images():
        if i.name.startswith(prefix):
            conn.image.delete_image(i.id)
    for r in conn.network.routers():
        if (r.name or "").startswith(prefix):
            for p in conn.network.ports(device_id=r.id, device_owner="network:router_interface"):
                conn.network.remove_interface_from_router(r, port=p.id)
            conn.network.delete_router(r)
    for g in conn.network.security_groups():
        if (g.name or "").startswith(prefix):
            conn.network.delete_security_group(g)
    for n in conn.network.networks():
        if (n.name or "").startswith(prefix):
            conn.network.delete_network(n)
    for k in conn.compute.keypairs():
        if k.name.startswith(prefix):
            conn.compute.delete_keypair(k)


def test_playbook(server: Server, tmp_path: Path) -> None:
    prefix = f"ans-{uuid.uuid4().hex[:8]}"
    disk = tmp_path / "tiny.raw"
    disk.write_bytes(os.urandom(4096))
    playbook = tmp_path / "site.yml"
    playbook.write_text(PLAYBOOK)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({
        "cloud": MEMBER, "prefix": prefix, "cidr": CIDR, "disk": str(disk),
        "ansible_python_interpreter": sys.executable,
    }))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = server.env(MEMBER)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        LC_ALL="C.UTF-8",
    )
    exe = Path(sys.executable).with_name("ansible-playbook")
    conn = connect(server)
    old_ips = {ip.id for ip in conn.network.ips()}
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(exe), "-i", "localhost,", "-e", f"@{extra}", str(playbook)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        output = proc.stdout + proc.stderr
        print(output)
        assert proc.returncode == 0, output[-6000:]
        recap = re.search(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)"
                          r"\s+failed=(\d+)", proc.stdout, re.MULTILINE)
        assert recap, output[-6000:]
        assert (recap[3], recap[4]) == ("0", "0"), recap[0]
        assert int(recap[1]) > 0, recap[0]
        assert leftovers(conn, prefix, old_ips) == []
    finally:
        print(f"ansible-playbook took {time.monotonic() - started:.1f} s")
        if leftovers(conn, prefix, old_ips):
            clean_up(conn, prefix, old_ips)
