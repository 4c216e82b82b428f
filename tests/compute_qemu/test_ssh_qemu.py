"""SSH into a real guest, as Tempest's validation does: a real ``onestack up``
(qemu driver, TCG, the Linux data plane; ``test_clients_qemu``'s cloud) boots
the test image with a key pair and a 2-vCPU flavor; the guest reads its metadata
from the metadata service, sets its hostname and root's authorized keys and
runs dropbear; the host connects to the floating IP with paramiko and the key
pair's private key (an imported ECDSA P-384 key, as Tempest makes by default),
checks the host key is the one the console printed, and runs Tempest's kind of
commands (``hostname``, ``grep -c ^processor /proc/cpuinfo``, ``free -m``, ``ip
-o link``, ``sudo``) behind Tempest's shell prologue. A key the guest was not
given is refused.

Needs root, the data plane's and the QEMU tools and ``dropbear-bin`` (the test
image has no SSH server without it); skipped otherwise. The image's contents
(dropbear and its libraries, no host key) are checked without booting it.
"""

from __future__ import annotations

import gzip
import io
import socket
import time
import uuid
from pathlib import Path

import paramiko  # type: ignore[import-untyped, unused-ignore]
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from onestack.compute.drivers import testimage
from tests.clients.conftest import Server
from tests.compute_qemu.test_clients_qemu import (  # noqa: F401 (cloud: a fixture)
    cli,
    cloud,
    pings,
    routed_network,
    show,
    wait_boot,
)
from tests.dataplane.conftest import REASON

DATAPLANE = pytest.mark.skipif(REASON is not None,
                               reason=f"Linux data plane unavailable: {REASON}")

M = testimage.MARKER
PROLOGUE = "set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin; "  # Tempest's ssh_shell_prologue
SSH_TIMEOUT = 60.0


def cpio_entries(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, contents) of a newc cpio archive."""
    entries: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        head = archive[pos:pos + 110]
        assert head[:6] == b"070701", pos
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        pos += 110
        name = archive[pos:pos + name_size - 1].decode()
        pos += name_size + (-(pos + name_size) % 4)
        body = archive[pos:pos + size]
        pos += size + (-(pos + size) % 4)
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body)


def test_the_image_carries_dropbear_and_no_host_key(image: testimage.TestImage) -> None:
    if not image.ssh:
        pytest.skip("the test image has no SSH server: dropbear-bin is not installed")
    files = cpio_entries(gzip.decompress(image.initrd.read_bytes()))
    wanted, why = testimage.ssh_files()
    assert why == "" and "/usr/sbin/dropbear" in wanted
    assert any("/ld-linux" in guest for guest in wanted)  # the ELF interpreter
    assert any("/libc.so" in guest for guest in wanted)
    for guest, host in wanted.items():  # each where the guest's loader looks
        mode, body = files[guest.lstrip("/")]
        assert body == host.read_bytes() and mode & 0o111, guest
    assert files["etc/passwd"][1] == b"root:*:0:0:root:/root:/bin/sh\n"
    assert files["root"][0] & 0o777 == 0o700
    assert files["usr/bin/sudo"][0] & 0o111
    # no host key ships: every guest makes its own at boot
    assert not [name for name in files if name.startswith("etc/dropbear")]
    assert not [name for name, (_, body) in files.items() if b"PRIVATE KEY" in body]


def test_without_dropbear_there_is_no_ssh(tmp_path: Path) -> None:
    files, why = testimage.ssh_files(("/nonexistent/dropbear",))
    assert files == {} and why == "/nonexistent/dropbear missing (install dropbear-bin)"
    script = tmp_path / "dropbear"
    script.write_text("#!/bin/sh\n")
    files, why = testimage.ssh_files((str(script),))
    assert files == {} and why == f"{script} is not a 64-bit dynamic ELF file"


def connect(address: str, key: paramiko.PKey, timeout: float = SSH_TIMEOUT
            ) -> paramiko.SSHClient:
    """An SSH session as root with ``key``, retried while the guest is not yet
    reachable (as Tempest does); an authentication failure is not retried."""
    deadline = time.monotonic() + timeout
    while True:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(address, username="root", pkey=key, timeout=5, banner_timeout=10,
                           auth_timeout=10, look_for_keys=False, allow_agent=False)
            return client
        except paramiko.AuthenticationException:
            client.close()
            raise
        except (OSError, EOFError, paramiko.SSHException):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``command`` behind Tempest's prologue."""
    _, out, err = client.exec_command(PROLOGUE + command, timeout=30)
    stdout, stderr = out.read().decode(), err.read().decode()
    return out.channel.recv_exit_status(), stdout, stderr


@pytest.mark.slow
@DATAPLANE
def test_ssh_into_a_guest_with_its_key_pair(cloud: Server, image: testimage.TestImage,  # noqa: F811
                                            tmp_path: Path) -> None:
    if not image.ssh:
        pytest.skip("the test image has no SSH server: dropbear-bin is not installed")
    tag = uuid.uuid4().hex[:6]
    img = show(cloud, "image", "create", "--file", str(image.disk), "--disk-format", "qcow2",
               "--container-format", "bare", f"testimage-{tag}")
    net = routed_network(cloud, tag, "10.67.0.0/24")
    cli(cloud, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
        "--ingress", "default")
    # as an admin: a 2-vCPU flavor, so that the guest's CPU count says something,
    # with a 1 GiB ephemeral disk
    flavor = f"f-{tag}"
    cloud.openstack("flavor", "create", "--vcpus", "2", "--ram", "128", "--disk", "1",
                    "--ephemeral", "1", flavor)
    # Tempest's default key ([validation] ssh_key_type = ecdsa): a P-384 key made
    # on the client, its public half imported, the private one read by paramiko
    private = ec.generate_private_key(ec.SECP384R1())
    public_key = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    (tmp_path / "key.pub").write_text(public_key)
    cli(cloud, "keypair", "create", "--public-key", str(tmp_path / "key.pub"), f"k-{tag}")
    key = paramiko.ECDSAKey.from_private_key(io.StringIO(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()))

    name = f"vm-{tag}"
    created = show(cloud, "server", "create", "--image", img["id"], "--flavor", flavor,
                   "--network", net["id"], "--key-name", f"k-{tag}", "--wait", name)
    assert created["status"] == "ACTIVE"
    boot = wait_boot(cloud, name, 1)
    assert f"{M} metadata {created['id']} (service)" in boot, boot
    assert f"{M} ssh 1 keys" in boot, boot
    host_keys = boot.split("-----BEGIN SSH HOST KEY KEYS-----", 1)[1].split("-----END", 1)[0]
    (host_key,) = [line.split()[:2] for line in host_keys.splitlines() if line.strip()]
    assert host_key[0] == "ssh-ed25519", host_keys

    fip = show(cloud, "floating", "ip", "create", "public")["floating_ip_address"]
    cli(cloud, "server", "add", "floating", "ip", name, fip)
    assert pings(fip), f"{fip} (the guest's floating IP) does not answer"

    client = connect(fip, key)
    try:
        transport = client.get_transport()
        assert transport is not None
        server_key = transport.get_remote_server_key()
        # the host key the guest made at boot, as its console said
        assert [server_key.get_name(), server_key.get_base64()] == host_key

        # Tempest: the hostname up to its first dot is the server's name
        status, out, err = run(client, "hostname")
        assert (status, out.strip()) == (0, name), (status, out, err)
        status, out, err = run(client, "grep -c ^processor /proc/cpuinfo")
        assert (status, out.strip()) == (0, "2"), (status, out, err)
        status, out, err = run(client, "free -m | grep Mem:")
        assert status == 0 and 64 < int(out.split()[1]) <= 128, (status, out, err)
        status, out, err = run(client, "ip -o link")
        assert status == 0 and ": eth0:" in out, (status, out, err)
        status, out, _ = run(client, "whoami; cat /root/.ssh/authorized_keys")
        assert (status, out) == (0, f"root\n{public_key}\n"), out
        # what else Tempest's remote client runs: its boot time, sudo
        status, out, err = run(client, "cut -f1 -d. /proc/uptime")
        assert status == 0 and 0 < int(out) < 600, (status, out, err)
        assert run(client, 'sudo sh -c "id -u"')[:2] == (0, "0\n")
        # the prologue's -e and pipefail: a failing command is a non-zero status
        assert run(client, "false | cat")[0] != 0
        # Tempest's disk count: lsblk's TYPE column; the root disk and the ephemeral
        # one, a FAT file system (as Nova makes it for a guest of no known os_type)
        status, out, err = run(client, "lsblk -lb --nodeps")
        assert status == 0, (status, out, err)
        header, *rows = out.splitlines()
        at = header.find("TYPE")
        disks = {row.split()[0]: int(row.split()[3]) for row in rows if row[at:at + 4] == "disk"}
        # (and the config drive, a read-only virtio disk here, a CD-ROM with Nova)
        assert {k: v for k, v in disks.items() if k != "vdc"} == {
            "vda": 1 << 30, "vdb": 1 << 30}, out
        status, out, err = run(client, "mount -t vfat /dev/vdb /mnt && ls -a /mnt && umount /mnt")
        assert status == 0, (status, out, err)
    finally:
        client.close()

    # a key the guest was not given gets nowhere
    with pytest.raises(paramiko.AuthenticationException):
        connect(fip, paramiko.RSAKey.generate(2048), timeout=10).close()

    cli(cloud, "server", "delete", "--wait", name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the guest is gone: nothing listens any more
        try:
            socket.create_connection((fip, 22), timeout=1).close()
        except OSError:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"{fip}:22 still answers after the delete")
