"""Run OpenStack's conformance suite, Tempest, against a running OneStack.

Usage (through the ``scripts/tempest`` wrapper)::

    scripts/tempest [--data-dir DIR] [--url URL] [--start [--qemu]] [--workdir DIR] REGEX
                    [--exclude-list FILE] [-- extra tempest run args]

Installs Tempest into ``.venv-tempest`` (once); with ``--start`` runs ``onestack up`` on a
free port in a temp data dir; writes a Tempest workspace whose ``tempest.conf`` comes from
the cloud's ``clouds.yaml`` and service catalog; runs ``tempest run``, exits with its code
and ends with one ``N passed, N failed, N skipped`` line.

Two modes. The default starts the cloud with the fake compute driver (servers are
ACTIVE at once, nothing boots) and writes ``[validation] run_validation = false``.
``--start --qemu`` (root, QEMU and the data plane's tools) starts it with the qemu
driver and the Linux data plane, on its own external bridge and subnet, and writes
tempest.conf for Tempest's validation: servers boot the starter image
``onestack-test`` (``[compute] starter_image``: the test image, with dropbear, which
takes its hostname and root's keys from the metadata service), get a floating IP
on the external network, and the tests SSH in as root with the key pair Tempest
made. At the end its guests are killed and its bridges, namespaces and nft tables
purged (``onestack down --purge-network``).
"""

from __future__ import annotations

import argparse
import configparser
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPEST_VERSION = "47.0.0"
VENV = REPO / ".venv-tempest"
BIN = VENV / "bin"

# Catalog service type -> [service_available] option of tempest or one of its plugins.
# oslo.config ignores options no installed plugin registers, so listing them is harmless;
# a service OneStack adds to its catalog switches its tests on automatically.
# fmt: off
SERVICE_OPTIONS: dict[str, str] = {
    "compute": "nova", "image": "glance", "object-store": "swift", "network": "neutron",
    "volumev3": "cinder", "block-storage": "cinder", "volume": "cinder",
    "orchestration": "heat", "metering": "ceilometer", "metric": "gnocchi",
    "alarming": "aodh", "dns": "designate", "load-balancer": "load_balancer",
    "key-manager": "barbican", "baremetal": "ironic", "sharev2": "manila",
    "container-infra": "magnum", "database": "trove", "messaging": "zaqar",
    "workflowv2": "mistral",
}
# fmt: on
ALWAYS_OFF = ("horizon",)  # a dashboard has no catalog entry
STARTER_IMAGE = "onestack-test"  # --qemu: the bootable image Tempest's servers boot


def ensure_tempest() -> None:
    """Create ``.venv-tempest`` with the pinned Tempest unless it is already there."""
    marker = VENV / ".onestack-tempest-version"
    if (BIN / "tempest").exists() and marker.exists() and marker.read_text() == TEMPEST_VERSION:
        return
    print(f"installing tempest {TEMPEST_VERSION} into {VENV} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(BIN / "pip"), "install", "-qq", "--disable-pip-version-check"]
    out = subprocess.run([*pip, f"tempest=={TEMPEST_VERSION}"], check=False, capture_output=True)
    if out.returncode != 0:
        sys.exit(f"pip install tempest failed:\n{out.stdout.decode()}{out.stderr.decode()}")
    marker.write_text(TEMPEST_VERSION)


def admin_auth(clouds: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``onestack-admin`` cloud of a parsed clouds.yaml and its ``auth`` block."""
    cloud = (clouds.get("clouds") or {}).get("onestack-admin")
    if not cloud:
        sys.exit("clouds.yaml has no 'onestack-admin' cloud")
    return cloud, cloud["auth"]


def fetch_catalog(clouds: dict[str, Any]) -> list[dict[str, Any]]:
    """Authenticate as the admin cloud (POST /v3/auth/tokens); return the token's catalog."""
    return authenticate(clouds)[1]


def authenticate(clouds: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Authenticate as the admin cloud: its token and the token's catalog."""
    _, auth = admin_auth(clouds)
    user = {"name": auth["username"], "password": auth["password"]}
    user["domain"] = {"name": auth.get("user_domain_name", "Default")}
    project = {"name": auth["project_name"]}
    project["domain"] = {"name": auth.get("project_domain_name", "Default")}
    identity = {"methods": ["password"], "password": {"user": user}}
    body = {"auth": {"identity": identity, "scope": {"project": project}}}
    url = auth["auth_url"].rstrip("/") + "/auth/tokens"
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            token = resp.headers["X-Subject-Token"]
            catalog: list[dict[str, Any]] = json.load(resp)["token"].get("catalog") or []
    except urllib.error.HTTPError as exc:
        sys.exit(f"POST {url} as {auth['username']}: {exc.code} {exc.read()[:500]!r}")
    return token, catalog


def build_conf(
    clouds: dict[str, Any], catalog: list[dict[str, Any]], workdir: Path,
    token: str | None = None, qemu: bool = False,
) -> configparser.ConfigParser:
    """Derive tempest.conf from a parsed clouds.yaml and a v3 token's service catalog."""
    cloud, auth = admin_auth(clouds)
    user_domain = auth.get("user_domain_name", "Default")
    project_domain = auth.get("project_domain_name", "Default")
    types = {entry.get("type") for entry in catalog}
    available = dict.fromkeys([*SERVICE_OPTIONS.values(), *ALWAYS_OFF], False)
    for service_type, name in SERVICE_OPTIONS.items():
        available[name] = available[name] or service_type in types
    if available["nova"] and token and not _compute_has_servers(catalog, token):
        # the compute service is in the catalog before it runs servers: Tempest's
        # tests that boot servers (in every API group) would all fail
        available["nova"] = False
    conf = configparser.ConfigParser(interpolation=None)
    conf.optionxform = str  # type: ignore[assignment,method-assign]
    conf["DEFAULT"] = {"log_dir": str(workdir / "logs"), "log_file": "tempest.log"}
    conf["oslo_concurrency"] = {"lock_path": str(workdir / "tempest_lock")}
    conf["auth"] = {
        "use_dynamic_credentials": "true",
        "create_isolated_networks": "false",
        "admin_username": auth["username"],
        "admin_password": auth["password"],
        "admin_project_name": auth["project_name"],
        "admin_domain_name": user_domain,
        "admin_user_domain_name": user_domain,
        "admin_project_domain_name": project_domain,
        "default_credentials_domain_name": project_domain,
    }
    conf["identity"] = {
        "uri_v3": auth["auth_url"].rstrip("/"),
        "auth_version": "v3",
        "region": cloud.get("region_name", "RegionOne"),
        "v3_endpoint_type": "public",
        "default_domain_id": "default",
        "admin_role": "admin",
        "disable_ssl_certificate_validation": "true",
    }
    # Tempest 47 has no application_credentials/project_tags/federation/oauth1 flags:
    # those tests always run (federation and OAuth1 live in keystone-tempest-plugin).
    conf["identity-feature-enabled"] = {
        "api_v2": "false",
        "trust": "false",
        "security_compliance": "false",
        "domain_specific_drivers": "false",
        "immutable_user_source": "false",
    }
    conf["validation"] = {"run_validation": "false"}  # no SSH into servers (fake driver)
    conf["service_available"] = {k: str(v).lower() for k, v in sorted(available.items())}
    if "image" in types:
        add_image_options(conf)
    if "object-store" in types:
        add_object_storage_options(conf, catalog)
    if "network" in types and token:
        add_network_options(conf, catalog, token)
    if available["nova"] and token:
        add_compute_options(conf, catalog, token, qemu)
    return conf


def _get_json(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def _compute_has_servers(catalog: list[dict[str, Any]], token: str) -> bool:
    entry = next(e for e in catalog if e.get("type") == "compute")
    url = next(ep["url"] for ep in entry["endpoints"] if ep.get("interface") == "public")
    try:
        _get_json(url.rstrip("/") + "/servers?limit=1", token)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise
    return True


def add_network_options(conf: configparser.ConfigParser, catalog: list[dict[str, Any]],
                        token: str) -> None:
    """The [network] sections for OneStack's Neutron API: the extensions are
    exactly what ``/v2.0/extensions`` lists, and the external network is the one
    ``onestack up`` creates."""
    entry = next(e for e in catalog if e.get("type") == "network")
    url = next(ep["url"] for ep in entry["endpoints"] if ep.get("interface") == "public")
    url = url.rstrip("/") + "/v2.0"
    aliases = sorted(e["alias"] for e in _get_json(url + "/extensions", token)["extensions"])
    public = [n for n in _get_json(url + "/networks?router:external=true", token)["networks"]]
    conf["network"] = {
        "catalog_type": "network",
        "endpoint_type": "public",
        "project_network_cidr": "10.100.0.0/16",
        "project_network_mask_bits": "28",
        "project_network_v6_cidr": "2001:db8::/48",
        "project_network_v6_mask_bits": "64",
        "public_network_id": public[0]["id"] if public else "",
        "floating_network_name": public[0]["name"] if public else "",
        "shared_physical_network": "false",
        "build_timeout": "60",
        "build_interval": "1",
    }
    conf["network-feature-enabled"] = {
        "api_extensions": ",".join(aliases),
        "ipv6": "true",
        "ipv6_subnet_attributes": "true",
        "port_security": str("port-security" in aliases).lower(),
        "floating_ips": "true",
    }


def _endpoint(catalog: list[dict[str, Any]], service_type: str) -> str:
    entry = next(e for e in catalog if e.get("type") == service_type)
    url: str = next(ep["url"] for ep in entry["endpoints"] if ep.get("interface") == "public")
    return url.rstrip("/")


def _send_json(url: str, token: str, body: Any, method: str = "POST",
               content_type: str = "application/json") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data, method=method, headers={
        "X-Auth-Token": token, "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def ensure_test_images(catalog: list[dict[str, Any]], token: str) -> list[str]:
    """Two small public images for Tempest's image_ref and image_ref_alt (found
    again by name on a second run). Their bytes are not a bootable disk: the
    Tempest run uses the fake compute driver, which never reads them."""
    url = _endpoint(catalog, "image") + "/v2/images"
    ids = []
    for name in ("tempest-image", "tempest-image-alt"):
        found = _get_json(f"{url}?name={name}", token)["images"]
        if found:
            ids.append(found[0]["id"])
            continue
        image = _send_json(url, token, {"name": name, "disk_format": "raw",
                                        "container_format": "bare", "visibility": "public"})
        _send_json(f"{url}/{image['id']}/file", token, b"\0" * 1024, method="PUT",
                   content_type="application/octet-stream")
        ids.append(image["id"])
    return ids


def ensure_shared_network(catalog: list[dict[str, Any]], token: str) -> str:
    """A shared network with a subnet that Tempest's servers boot on
    ([compute] fixed_network_name; Tempest does not create isolated networks here)."""
    url = _endpoint(catalog, "network") + "/v2.0"
    name = "tempest-shared"
    if not _get_json(f"{url}/networks?name={name}", token)["networks"]:
        net = _send_json(f"{url}/networks", token, {"network": {"name": name, "shared": True}})
        subnet = _send_json(f"{url}/subnets", token, {"subnet": {
            "network_id": net["network"]["id"], "ip_version": 4, "cidr": "10.199.0.0/20",
            "name": name}})
        # a router to the external network, so floating IPs can reach its servers
        public = _get_json(f"{url}/networks?router:external=true", token)["networks"]
        if public:
            router = _send_json(f"{url}/routers", token, {"router": {
                "name": name, "external_gateway_info": {"network_id": public[0]["id"]}}})
            _send_json(f"{url}/routers/{router['router']['id']}/add_router_interface", token,
                       {"subnet_id": subnet["subnet"]["id"]}, method="PUT")
    return name


# Compute features OneStack implements ([compute-feature-enabled]); the rest are
# off, with the reason in docs/compute.md.
COMPUTE_FEATURES = {
    "console_output": True, "pause": True, "disk_config": True, "metadata_service": True,
    "config_drive": True, "resize": True, "rescue": True, "suspend": True,
    "shelve": True, "snapshot": True, "change_password": False,
    "cold_migration": False, "live_migration": False, "vnc_console": False,
    "spice_console": False, "serial_console": False, "interface_attach": True,
    "personality": False, "attach_encrypted_volume": False, "enable_instance_password": True,
    "block_migration_for_live_migration": False, "swap_volume": False,
    "volume_multiattach": False, "stable_rescue": False, "shelve_migrate": False,
    "unified_limits": False, "hostname_fqdn_sanitization": True,
}


def bootable_image(catalog: list[dict[str, Any]], token: str, name: str = STARTER_IMAGE,
                   timeout: float = 300) -> str:
    """The id of the public image ``name`` once it is active: the starter image a
    cloud with the qemu driver builds and uploads in the background after it
    starts (the test image: this machine's kernel and busybox, with dropbear)."""
    url = _endpoint(catalog, "image") + f"/v2/images?name={name}"
    deadline = time.monotonic() + timeout
    while True:
        active = [i for i in _get_json(url, token)["images"] if i["status"] == "active"]
        if active:
            return str(active[0]["id"])
        if time.monotonic() > deadline:
            sys.exit(f"no active image {name!r} after {timeout:.0f}s (onestack.log says why)")
        time.sleep(1)


def add_validation_options(conf: configparser.ConfigParser) -> None:
    """[validation] for real guests (``--qemu``): Tempest's validatable servers get
    a key pair, a security group allowing ping and SSH and a floating IP on the
    external network, and the tests SSH in as root with the key pair's private key
    (the test image installs the metadata's public keys for root)."""
    conf["validation"] = {
        "run_validation": "true",
        "connect_method": "floating",
        "auth_method": "keypair",
        "image_ssh_user": "root",
        "image_alt_ssh_user": "root",
        "ip_version_for_ssh": "4",
        "security_group": "true",
        "security_group_rules": "true",
        # a TCG guest boots in seconds, slower when both cores are busy
        "ping_timeout": "120",
        "connect_timeout": "30",
        "ssh_timeout": "180",
    }
    # the floating IPs come from [network] floating_network_name / public_network_id:
    # the external network `onestack up` creates


def add_compute_options(conf: configparser.ConfigParser, catalog: list[dict[str, Any]],
                        token: str, qemu: bool = False) -> None:
    """The [compute] sections for OneStack's Nova API. Fake driver: servers are
    ACTIVE at once, nothing boots, so there is no SSH validation. ``qemu``: the
    servers boot the starter image under QEMU and Tempest validates them over SSH."""
    if qemu:
        image = image_alt = bootable_image(catalog, token)
        add_validation_options(conf)
    else:
        image, image_alt = ensure_test_images(catalog, token)
    # the newest microversion the server offers ("latest" would also run the
    # tests of newer ones, which it refuses with 406)
    newest = _get_json(_endpoint(catalog, "compute") + "/", token)["version"]["version"]
    conf["compute"] = {
        "catalog_type": "compute",
        "endpoint_type": "public",
        "image_ref": image,
        "image_ref_alt": image_alt,
        # m1.nano (128 MiB, 1 GiB disk), m1.micro (192 MiB): created on the first
        # start; the test image boots in 128 MiB and its disk is smaller than 1 GiB
        "flavor_ref": "42",
        "flavor_ref_alt": "84",
        "min_microversion": "2.1",
        "max_microversion": newest or "latest",
        # a real guest takes a few seconds under TCG (more on a busy machine)
        "build_timeout": "300" if qemu else "60",
        "build_interval": "1",
        "min_compute_nodes": "1",
    }
    if conf.has_section("network"):
        conf["compute"]["fixed_network_name"] = ensure_shared_network(catalog, token)
    conf["compute-feature-enabled"] = {k: str(v).lower() for k, v in COMPUTE_FEATURES.items()}
    # a real guest has a VNC server behind the console proxy; the fake one has none
    conf["compute-feature-enabled"]["vnc_console"] = str(qemu).lower()
    conf["compute-feature-enabled"]["scheduler_enabled_filters"] = (
        "AvailabilityZoneFilter,ComputeFilter,ComputeCapabilitiesFilter,"
        "ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter")


def swift_info(catalog: list[dict[str, Any]]) -> dict[str, Any]:
    """``GET /info`` of the object-store endpoint (its URL without ``/v1/...``)."""
    entry = next(e for e in catalog if e.get("type") == "object-store")
    url = next(ep["url"] for ep in entry["endpoints"] if ep.get("interface") == "public")
    base = url.split("/v1/", 1)[0]
    with urllib.request.urlopen(base + "/info", timeout=30) as resp:
        info: dict[str, Any] = json.load(resp)
    return info


def add_object_storage_options(conf: configparser.ConfigParser,
                               catalog: list[dict[str, Any]]) -> None:
    """The [object-storage] sections for OneStack's Swift API: the optional APIs
    are exactly the sections ``/info`` announces, as Swift's own would be."""
    info = swift_info(catalog)
    conf["object-storage"] = {
        "catalog_type": "object-store",
        "operator_role": "member",
        "reseller_admin_role": "ResellerAdmin",
    }
    conf["object-storage-feature-enabled"] = {
        "discoverable_apis": ",".join(sorted(k for k in info if k != "swift")),
        # no container sync between clusters (docs/object-storage.md says why)
        "container_sync": "false",
        "object_versioning": str("versioned_writes" in info).lower(),
        "discoverability": "true",
        "tempurl_digest_hashlib": "sha256",
    }


# Glance's default [image_format] lists, reordered for Tempest, which takes
# element [0] of each as "the" format for its uploads: 'bare' and 'raw' carry any
# bytes, so the random test data is a valid image whatever the server checks.
IMAGE_CONTAINER_FORMATS = ["bare", "ami", "ari", "aki", "ovf", "ova", "docker", "compressed"]
IMAGE_DISK_FORMATS = [
    "raw",
    "qcow2",
    "ami",
    "ari",
    "aki",
    "vhd",
    "vhdx",
    "vmdk",
    "vdi",
    "iso",
    "ploop",
]
# Whether the image service rejects uploaded data that does not match the image's
# disk_format, as Glance does ([image_format] require_image_format_match). True
# skips ListUserImagesTest, which uploads random bytes as qcow2/ami/vhd...; the
# cloud under test says which through the same setting in the environment
# (scripts/test turns it off for its Tempest run so that those tests run).
IMAGE_FORMAT_ENFORCEMENT = os.environ.get(
    "ONESTACK_IMAGE__REQUIRE_FORMAT_MATCH", "true").strip().lower() not in ("false", "0", "no")


def add_image_options(conf: configparser.ConfigParser) -> None:
    """The [image] and [image-feature-enabled] sections for OneStack's Glance v2.

    Import methods, stores and API versions need no option: the tests read them
    from GET /v2/info/import, /v2/info/stores and the version document and skip
    what the server does not offer (web-download, glance-download, multi-store).
    """
    conf["image"] = {
        # One API worker: no alternate_image_endpoint, so the "remote worker"
        # tests (test_remote_import/delete, test_remote_and_self_cache) skip.
        # The service is in the catalog as type "image" (the default catalog_type).
        "catalog_type": "image",
        "endpoint_type": "public",
        "container_formats": ",".join(IMAGE_CONTAINER_FORMATS),
        "disk_formats": ",".join(IMAGE_DISK_FORMATS),
        # No /v2/cache API (Glance's image_cache_dir): ImageCachingTest skips.
        "image_caching_enabled": "false",
        # Same as OneStack's [image] hashing_algorithm; read only by http-store tests.
        "hashing_algorithm": "sha512",
        # Test images are 1-4 KiB: a minute is ample, and a hang fails fast.
        "build_timeout": "60",
        "build_interval": "1",
        # http_image / http_qcow2_image keep Tempest's defaults (cirros on the
        # internet). http_image gates ImageTaskCreate, whose only active test posts
        # a task importing from an unresolvable host (400, or a task that fails);
        # the http-store and location tests that would fetch it are off below, and
        # http_qcow2_image is only fetched if /v2/info/import offers web-download.
        # No images_manifest_file: ImagesFormatTest (os-test-images) skips; it
        # also needs compute.
    }
    conf["image-feature-enabled"] = {
        "api_v2": "true",
        # Interoperable import (stage + import); the methods come from /v2/info/import.
        "import_image": "true",
        # os_glance_* properties are reserved: 403 on create and on PATCH.
        "os_glance_reserved": "true",
        # No show_multiple_locations / http store: images live in OneStack's own
        # store, so the location API tests (ImageLocations*, *LocationImportTest,
        # HashCalculationRemoteDeletionTest) skip.
        "manage_locations": "false",
        "http_store_enabled": "false",
        "store_weight_enabled": "false",
        # No conversion on import (only the manifest-driven format tests read it).
        "image_conversion": "false",
        "image_format_enforcement": str(IMAGE_FORMAT_ENFORCEMENT).lower(),
        # Checksum and os_hash_value are computed on upload and import.
        "do_secure_hash": "true",
    }
    # OneStack's image policy is Glance's secure-RBAC defaults: let the tests read
    # with a reader-only user of the project (project_reader credentials).
    if not conf.has_section("enforce_scope"):
        conf.add_section("enforce_scope")
    conf["enforce_scope"]["glance"] = "true"


def write_workspace(workdir: Path, conf: configparser.ConfigParser) -> Path:
    """``tempest init`` the workspace once, then (re)write its etc/tempest.conf."""
    if not (workdir / ".stestr.conf").exists():
        if workdir.exists() and not any(workdir.iterdir()):
            workdir.rmdir()
        # Empty --config-dir and a throwaway --workspace-path: ignore /etc/tempest and
        # leave ~/.tempest alone.
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "etc").mkdir()
            init = [str(BIN / "tempest"), "init", "--config-dir", f"{tmp}/etc"]
            init += ["--workspace-path", f"{tmp}/ws.yaml", str(workdir)]
            subprocess.run(init, check=True, stdout=subprocess.DEVNULL)
    path = workdir / "etc" / "tempest.conf"
    with path.open("w") as fh:
        conf.write(fh)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        try:
            with urllib.request.urlopen(url + "/healthcheck", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def onestack_cmd() -> list[str]:
    exe = REPO / ".venv" / "bin" / "onestack"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "onestack"]


def onestack_env() -> dict[str, str]:
    paths = [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))


def start_onestack(data_dir: Path, port: int, qemu: bool = False) -> subprocess.Popen[bytes]:
    """Start ``onestack up`` in the background, logging to DATA_DIR/onestack.log;
    ``qemu``: with the qemu driver (taps) and the Linux data plane."""
    cmd = onestack_cmd()
    env = onestack_env()
    # its own external bridge and subnet: a cloud already running here keeps br-ex
    env.update(ONESTACK_NETWORK__EXTERNAL_BRIDGE="brx" + os.urandom(3).hex(),
               ONESTACK_NETWORK__EXTERNAL_CIDR=f"172.30.{os.urandom(1)[0]}.0/24",
               ONESTACK_NETWORK__EXTERNAL_MASQUERADE="false")
    if qemu:
        # real guests on taps of the data plane's bridges; KVM when the machine
        # has it (probed), else TCG
        env.update(ONESTACK_NETWORK__DATAPLANE="linux",
                   ONESTACK_COMPUTE__COMPUTE_DRIVER="qemu",
                   ONESTACK_COMPUTE__QEMU_NETWORK="tap",
                   ONESTACK_COMPUTE__SHUTDOWN_TIMEOUT="10")
        env.setdefault("ONESTACK_COMPUTE__QEMU_ACCEL",
                       "auto" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg")
        env.setdefault("ONESTACK_COMPUTE__STARTER_IMAGE", STARTER_IMAGE)
    else:
        # Tempest's servers boot on the fake driver (its images are not bootable);
        # real guests are --qemu's and tests/compute_qemu's
        env.setdefault("ONESTACK_COMPUTE__COMPUTE_DRIVER", "fake")
    cmd += ["up", "--data-dir", str(data_dir), "--port", str(port)]
    with (data_dir / "onestack.log").open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def kill_guests(data_dir: Path) -> None:
    """SIGKILL the QEMU processes of the cloud in ``data_dir`` (its guests outlive
    ``onestack up``, so that they survive a restart)."""
    for pidfile in (data_dir / "compute" / "instances").glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarize(workdir: Path) -> tuple[int, int, int]:
    """Count passed/failed/skipped in stestr's last run (``stestr last --subunit``)."""
    last = [str(BIN / "stestr"), "last", "--subunit"]
    stream = subprocess.run(last, cwd=workdir, check=False, capture_output=True).stdout
    to_csv = [str(BIN / "subunit2csv")]
    rows = subprocess.run(to_csv, input=stream, check=False, capture_output=True).stdout
    # testtools outcomes: success, failure, error, skip, xfail (expected failure).
    kind = {"success": 0, "xfail": 0, "failure": 1, "error": 1, "skip": 2}
    counts = [0, 0, 0]
    for row in csv.DictReader(io.StringIO(rows.decode())):
        if row["status"] in kind:
            counts[kind[row["status"]]] += 1
    return counts[0], counts[1], counts[2]


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse our options; everything after ``--`` goes to ``tempest run`` verbatim."""
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    xdg = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    parser = argparse.ArgumentParser(prog="scripts/tempest", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("regex", help="tempest test regex, e.g. tempest.api.identity.v3.test_tokens")
    add("--data-dir", type=Path, default=xdg / "onestack", help="holds clouds.yaml")
    add("--url", default="http://127.0.0.1:8780", help="OneStack base URL (healthcheck)")
    add("--start", action="store_true", help="start `onestack up` in a temp dir, free port")
    add("--workdir", type=Path, help="tempest workspace (default: .tempest, with --qemu "
        ".tempest-qemu)")
    add("--exclude-list", type=Path, help="file of test regexes to exclude")
    add("--qemu", action="store_true", help="with --start: the qemu driver and the Linux "
        "data plane, and Tempest's SSH validation of real guests (needs root)")
    args = parser.parse_args(argv)
    if args.qemu and not args.start:
        parser.error("--qemu needs --start")
    if args.qemu and os.geteuid() != 0:
        parser.error("--qemu needs root (the Linux data plane)")
    if args.workdir is None:
        args.workdir = REPO / (".tempest-qemu" if args.qemu else ".tempest")
    return args, extra


def run_tempest(args: argparse.Namespace, extra: list[str]) -> int:
    """Write the workspace, run tempest in it and print the summary line."""
    clouds = yaml.safe_load((args.data_dir / "clouds.yaml").read_text())
    token, catalog = authenticate(clouds)
    workdir = args.workdir.resolve()
    conf = build_conf(clouds, catalog, workdir, token, qemu=args.qemu)
    conf_path = write_workspace(workdir, conf)
    services = ", ".join(sorted({str(s.get("type")) for s in catalog}))
    print(f"catalog: {services}; config: {conf_path}", flush=True)
    stream = workdir / ".stestr" / "next-stream"
    before = stream.read_text() if stream.exists() else None
    cmd = [str(BIN / "tempest"), "run", "--config-file", str(conf_path), "--regex", args.regex]
    cmd += ["--concurrency", "2"]
    if args.exclude_list:
        cmd += ["--exclude-list", str(args.exclude_list.resolve())]
    code = subprocess.run([*cmd, *extra], cwd=workdir, check=False).returncode
    ran = stream.exists() and stream.read_text() != before  # else stestr last is stale
    passed, failed, skipped = summarize(workdir) if ran else (0, 0, 0)
    print(f"\n{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    ensure_tempest()
    proc: subprocess.Popen[bytes] | None = None
    tmp: Path | None = None
    try:
        if args.start:
            tmp = Path(tempfile.mkdtemp(prefix="onestack-tempest-"))
            port = free_port()
            args.data_dir, args.url = tmp, f"http://127.0.0.1:{port}"
            proc = start_onestack(tmp, port, args.qemu)
            print(f"started onestack (pid {proc.pid}) at {args.url} in {tmp}", flush=True)
        if not wait_healthy(args.url, proc, (120 if args.qemu else 60) if args.start else 5):
            if tmp is not None:
                sys.stderr.write((tmp / "onestack.log").read_text(errors="replace")[-4000:])
            sys.exit(f"OneStack is not healthy at {args.url}/healthcheck")
        return run_tempest(args, extra)
    finally:
        if proc is not None:
            if tmp is not None:
                kill_guests(tmp)
            stop(proc)
            if tmp is not None:
                kill_guests(tmp)  # any a build under way started meanwhile
            if tmp is not None and os.geteuid() == 0:  # the kernel objects it left
                subprocess.run([*onestack_cmd(), "down", "--data-dir", str(tmp),
                                "--purge-network"], check=False, capture_output=True,
                               env=onestack_env(), timeout=120)
        if tmp is not None:  # keep the server's log next to tempest's
            logs = args.workdir / "logs"
            if (tmp / "onestack.log").exists() and logs.is_dir():
                shutil.copy(tmp / "onestack.log", logs / "onestack.log")
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
