"""Typed configuration: one TOML file in the data dir plus environment overrides.

Read once by the command line, then passed explicitly; nothing reads the
environment at import time. An environment variable ``ONESTACK_<FIELD>`` overrides
a top-level field and ``ONESTACK_<SECTION>__<FIELD>`` a field of a section, for
example ``ONESTACK_DATABASE_URL`` or ``ONESTACK_IDENTITY__TOKEN_EXPIRATION``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_FILE = "onestack.toml"
ENV_PREFIX = "ONESTACK_"
DEFAULT_PORT = 8780


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/onestack``, that is ``~/.local/share/onestack`` by default."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "onestack"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentitySettings(Section):
    token_expiration: int = Field(3600, gt=0, description="Token lifetime in seconds")
    allow_expired_window: int = Field(
        172800, ge=0, description="How long after expiry ?allow_expired=1 still validates"
    )
    max_active_keys: int = Field(3, ge=2, description="Fernet keys kept by rotation")
    list_limit: int | None = Field(None, gt=0, description="Truncate identity lists")
    password_time_cost: int = Field(2, ge=1)
    password_memory_cost_kib: int = Field(19456, ge=1024)
    lockout_failure_attempts: int | None = None
    lockout_duration: int = 1800


class ImageSettings(Section):
    @field_validator(
        "disk_formats", "container_formats", "import_methods", "web_download_allowed_schemes",
        "web_download_allowed_hosts", "file_stores", mode="before",
    )
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """Lists may be given as comma-separated strings (environment variables)."""
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    disk_formats: list[str] = Field(
        default_factory=lambda: ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2",
                                 "vdi", "iso", "ploop"],
        description="Accepted disk_format values",
    )
    container_formats: list[str] = Field(
        default_factory=lambda: ["ami", "ari", "aki", "bare", "ovf", "ova", "docker",
                                 "compressed"],
        description="Accepted container_format values",
    )
    image_size_cap: int = Field(1099511627776, gt=0, description="Largest image, in bytes")
    image_property_quota: int = Field(128, ge=0)
    image_tag_quota: int = Field(128, ge=0)
    image_member_quota: int = Field(128, ge=0)
    limit_param_default: int = Field(25, gt=0)
    api_limit_max: int = Field(1000, gt=0)
    hashing_algorithm: str = "sha512"
    default_store: str = "file"
    file_stores: list[str] = Field(
        default_factory=lambda: ["file"],
        description="Filesystem stores (Glance's multi-store): 'file' keeps its data in "
        "DATA_DIR/images, another name in DATA_DIR/images-<name>",
    )
    import_methods: list[str] = Field(
        default_factory=lambda: ["glance-direct", "web-download", "copy-image"]
    )
    web_download_allowed_schemes: list[str] = Field(default_factory=lambda: ["http", "https"])
    web_download_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts web-download may fetch from; empty means none (web-download off)",
    )
    convert_to_format: str | None = Field(
        None, description="Disk format that imports convert to with qemu-img (e.g. raw)"
    )
    show_image_direct_url: bool = False
    require_format_match: bool = Field(
        True,
        description="Refuse image data that is not in its declared disk_format (as Glance's "
        "[image_format] require_image_format_match); backing files are refused regardless",
    )


class ObjectStoreSettings(Section):
    """The object storage service (Swift API v1 and S3); names follow Swift's
    ``proxy-server.conf``, ``swift.conf`` ``[swift-constraints]`` and keystoneauth."""

    @field_validator("operator_roles", "reader_roles", "devices", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    devices: list[str] = Field(
        default_factory=lambda: ["d1", "d2", "d3"],
        description="Local devices: directories under DATA_DIR/object-devices",
    )
    replicas: int | None = Field(
        None, ge=1, description="Replicas per object (default: 3, or fewer devices)"
    )
    part_power: int = Field(10, ge=1, le=24, description="The ring has 2**part_power partitions")
    operator_roles: list[str] = Field(
        default_factory=lambda: ["admin", "member", "swiftoperator"],
        description="Roles that own their project's account (keystoneauth operator_roles)",
    )
    reader_roles: list[str] = Field(
        default_factory=lambda: ["reader"],
        description="Roles that may read their project's account (project_reader_roles)",
    )
    reseller_admin_role: str = "ResellerAdmin"
    reseller_prefix: str = "AUTH_"
    max_file_size: int = Field(5368709122, gt=0)
    max_meta_name_length: int = 128
    max_meta_value_length: int = 256
    max_meta_count: int = 90
    max_meta_overall_size: int = 4096
    max_header_size: int = 8192
    max_object_name_length: int = 1024
    container_listing_limit: int = 10000
    account_listing_limit: int = 10000
    max_account_name_length: int = 256
    max_container_name_length: int = 256
    extra_header_count: int = 0
    max_manifest_segments: int = 1000
    max_manifest_size: int = 8388608
    min_segment_size: int = 1
    expiring_objects_interval: float = Field(
        60.0, gt=0, description="Seconds between passes of the object expirer"
    )
    replication_interval: float = Field(
        300.0, gt=0, description="Seconds between replicator and auditor passes"
    )
    s3_location: str | None = Field(
        None, description="The S3 region (LocationConstraint); the cloud's region if unset"
    )
    s3_allowable_clock_skew: float = Field(900.0, gt=0, description="Seconds a signed "
                                           "S3 request's date may be off")
    s3_min_segment_size: int = Field(5 * 1024 * 1024, gt=0, description="Smallest S3 "
                                     "multipart part but the last")
    s3_secret_cache_duration: float = Field(60.0, ge=0, description="Seconds an EC2 "
                                            "secret is kept (as Swift's s3token)")
    cluster_secret_file: str = Field(
        "secrets/object-cluster", description="Shared secret between object servers"
    )


class NetworkSettings(Section):
    """The networking service (Neutron API v2.0); names follow ``neutron.conf`` and
    the ML2 and Linux bridge agent options where there is one."""

    @field_validator("physical_networks", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("tunnel_ip", mode="before")
    @classmethod
    def _ip_address(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        return str(ipaddress.ip_address(str(value)))  # ValueError: a validation error

    dataplane: str = Field(
        "auto", description="linux (real bridges, namespaces, dnsmasq, nftables), "
        "fake (none: API only), auto (linux when root with network namespaces)",
    )
    host: str | None = Field(None, description="This host's name for bindings and agents "
                             "(default: the machine's host name)")
    tunnel_ip: str | None = Field(
        None, description="This host's VXLAN endpoint address (Neutron's local_ip); unset: "
        "no VXLAN, every network is local to this host")
    network_node: bool = Field(
        True, description="This host runs DHCP and routers (exactly one host of a "
        "multi-host cloud should); false: it wires only the ports bound to it")
    base_mac: str = Field("fa:16:3e:00:00:00", description="Ports' MACs start with its "
                          "first three octets")
    global_physnet_mtu: int = Field(1500, ge=68)
    tenant_network_type: str = Field("vxlan", description="Type of project networks: "
                                     "vxlan, vlan or local")
    vni_ranges: str = Field("1:65535", description="VXLAN ids for project networks")
    vlan_ranges: str = Field("1:4094", description="VLAN ids for project networks")
    physical_networks: list[str] = Field(
        default_factory=lambda: ["public"], description="Physical networks (flat, vlan)"
    )
    external_network: str | None = Field(
        "public", description="Name of the external network `up` creates (none if empty)"
    )
    external_physical_network: str = "public"
    external_bridge: str = Field("br-ex", description="Host bridge of the external network")
    external_cidr: str = Field("172.24.4.0/24", description="The external subnet; the host "
                               "takes its first address, so floating IPs are reachable")
    external_masquerade: bool = Field(True, description="NAT the external subnet out of the "
                                      "host's uplink")
    dns_domain: str = "openstacklocal"
    dhcp_lease_duration: int = Field(86400, gt=0)
    max_fixed_ips_per_port: int = Field(5, gt=0)
    resync_interval: float = Field(60.0, gt=0, description="Seconds between full passes "
                                   "of the data-plane agent")
    default_quota: int = -1
    quota_network: int = 100
    quota_subnet: int = 100
    quota_port: int = 500
    quota_router: int = 10
    quota_floatingip: int = 50
    quota_security_group: int = 10
    quota_security_group_rule: int = 100
    quota_subnetpool: int = -1
    pagination_max_limit: int = Field(-1, description="Largest page (-1: no limit)")


class ComputeSettings(Section):
    """The compute service (Nova API v2.1); names follow ``nova.conf`` where there is one."""

    host: str = Field("", description="This compute host's name (default: [network] host, "
                      "else the machine's name)")
    compute_driver: Literal["auto", "fake", "qemu"] = Field(
        "auto", description="qemu: real VMs (KVM when it works, else TCG); fake: no I/O, "
        "instant; auto: qemu when qemu-system-x86_64 and qemu-img are installed, else fake")
    qemu_accel: Literal["auto", "kvm", "tcg"] = Field(
        "auto", description="auto: KVM if a test guest really boots with it, else TCG")
    qemu_network: Literal["auto", "tap", "user"] = Field(
        "auto", description="tap: a tap per port for the networking data plane's bridges; "
        "user: QEMU's user-mode networking (when the data plane is off); auto: user when "
        "[network] dataplane is fake or OneStack is not root, else tap")
    config_drive: bool = Field(True, description="Give every guest a config drive")
    resume_guests_state_on_host_boot: bool = Field(
        True, description="At start, boot again the guests that ran before the host "
        "rebooted (the database says running, the hypervisor does not; Nova's default "
        "is false)")
    starter_image: str = Field(
        "onestack-test", description="With the qemu driver, the first start builds the "
        "test image (this machine's kernel and busybox) and offers it as a public image "
        "of this name, so a first `openstack server create` has something to boot; "
        "empty: none")
    shutdown_timeout: float = Field(60.0, gt=0, description="Seconds a guest gets to "
                                    "power off on ACPI before it is stopped")
    report_interval: float = Field(10.0, gt=0, description="Seconds between the heartbeats "
                                   "of this host's compute services (Nova's report_interval)")
    service_down_time: float = Field(60.0, gt=0, description="A compute service whose last "
                                     "heartbeat is older than this many seconds is down: "
                                     "the scheduler skips its host (Nova's service_down_time)")
    image_cache_manager_interval: int = Field(
        2400, description="Seconds between the qemu driver's prunes of its base-image "
        "cache (Nova's [image_cache] manager_interval): 0: every 60 s; negative: never")
    remove_unused_original_minimum_age_seconds: int = Field(
        86400, ge=0, description="A base image no guest of this host uses is removed "
        "once its last use is this many seconds old (Nova's [image_cache] option)")
    fake_vcpus: int = Field(1000, gt=0, description="The fake host's VCPUs")
    fake_memory_mb: int = Field(800000, gt=0, description="The fake host's memory (MiB)")
    fake_disk_gb: int = Field(600000, gt=0, description="The fake host's disk (GiB)")
    cpu_allocation_ratio: float = Field(4.0, gt=0)
    ram_allocation_ratio: float = Field(1.0, gt=0)
    disk_allocation_ratio: float = Field(1.0, gt=0)
    default_flavors: bool = Field(True, description="Create devstack's m1.* flavors (and "
                                  "m1.nano, m1.micro) on the first start")
    max_limit: int = Field(1000, gt=0, description="Largest page of a list ([api] max_limit)")
    default_availability_zone: str = "nova"
    shelved_offload_time: int = Field(0, ge=-1, description="0: a shelved server is "
                                      "offloaded at once (Nova's default); -1: never. A "
                                      "timed offload (>0) is not implemented: it acts as -1")
    # the defaults of Nova's [quota] section; those with a unified-limit name seed
    # the compute service's registered limits in the identity service on startup
    quota_instances: int = 10
    quota_cores: int = 20
    quota_ram: int = 51200
    quota_key_pairs: int = 100
    quota_metadata_items: int = 128
    quota_injected_files: int = 5
    quota_injected_file_content_bytes: int = 10240
    quota_server_groups: int = 10
    quota_server_group_members: int = 10


class Settings(Section):
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    public_url: str | None = Field(
        None, description="Base URL the catalog advertises; derived from host and port if unset"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; SQLite under the data dir if unset"
    )
    region: str = "RegionOne"
    log_level: str = "info"
    access_log: bool = True
    identity: IdentitySettings = IdentitySettings()
    image: ImageSettings = ImageSettings()
    object_store: ObjectStoreSettings = ObjectStoreSettings()
    network: NetworkSettings = NetworkSettings()
    compute: ComputeSettings = ComputeSettings()

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'onestack.db'}"

    def path(self, *parts: str) -> Path:
        return self.data_dir.joinpath(*parts)


class ConfigError(Exception):
    """The config file or an override is not valid."""


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "DATA_DIR":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        section, _, field = name.partition("__")
        if field:
            out.setdefault(section, {})[field] = value
        else:
            out[section] = value
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from ``DATA_DIR/onestack.toml``, then the environment, then ``overrides``
    (the command line's flags; ``None`` values are ignored).

    Raises:
        ConfigError: the file is not TOML or a value has the wrong type.
    """
    environ = os.environ if environ is None else environ
    directory = Path(
        data_dir or environ.get(ENV_PREFIX + "DATA_DIR") or default_data_dir()
    ).absolute()
    values: dict[str, Any] = {}
    file = directory / CONFIG_FILE
    if file.exists():
        try:
            values = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
    values = _merge(values, _env_overrides(environ))
    values = _merge(values, {k: v for k, v in overrides.items() if v is not None})
    values["data_dir"] = directory
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration ({file} or {ENV_PREFIX}*): {exc}") from exc


TEMPLATE = """\
# OneStack configuration. Every key is optional; environment variables
# ONESTACK_<KEY> (and ONESTACK_<SECTION>__<KEY>) override this file.
# host = "127.0.0.1"
# port = {port}
# database_url = "postgresql+asyncpg://user@127.0.0.1/onestack"
# region = "RegionOne"
# log_level = "info"

[identity]
# token_expiration = 3600
"""


def write_template(directory: Path) -> None:
    """Write a commented config file if the data dir has none."""
    file = directory / CONFIG_FILE
    if not file.exists():
        file.write_text(TEMPLATE.format(port=DEFAULT_PORT))
