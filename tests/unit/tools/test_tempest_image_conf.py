"""Tests for the image sections tools/tempest_run.py writes into tempest.conf."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TOOLS = Path(__file__).resolve().parents[3] / "tools"
sys.path.insert(0, str(TOOLS))

import tempest_run
from test_tempest_conf import CLOUDS_YAML, _conf, _endpoint

IMAGE_SECTIONS = ("image", "image-feature-enabled", "enforce_scope")
# Glance's [image_format] defaults.
GLANCE_DISK_FORMATS = [
    "ami",
    "ari",
    "aki",
    "vhd",
    "vhdx",
    "vmdk",
    "raw",
    "qcow2",
    "vdi",
    "iso",
    "ploop",
]
GLANCE_CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]


def _image_conf(tmp_path: Path) -> configparser.ConfigParser:
    return _conf([_endpoint("identity", "identity"), _endpoint("image", "image")], tmp_path)


def test_no_image_service_writes_no_image_sections(tmp_path: Path) -> None:
    conf = _conf([_endpoint("identity", "identity")], tmp_path)
    for section in IMAGE_SECTIONS:
        assert not conf.has_section(section), section


def test_image_service_writes_onestack_features(tmp_path: Path) -> None:
    conf = _image_conf(tmp_path)
    assert conf.getboolean("service_available", "glance")
    image, features = conf["image"], conf["image-feature-enabled"]
    assert image["catalog_type"] == "image"
    assert not conf.getboolean("image", "image_caching_enabled")
    for on in ("api_v2", "import_image", "os_glance_reserved", "do_secure_hash"):
        assert conf.getboolean("image-feature-enabled", on), on
    for off in ("manage_locations", "http_store_enabled", "store_weight_enabled"):
        assert not conf.getboolean("image-feature-enabled", off), off
    assert not conf.getboolean("image-feature-enabled", "image_conversion")
    assert features["image_format_enforcement"] == str(tempest_run.IMAGE_FORMAT_ENFORCEMENT).lower()
    assert conf.getboolean("enforce_scope", "glance")


def test_formats_are_glances_with_data_agnostic_ones_first(tmp_path: Path) -> None:
    conf = _image_conf(tmp_path)
    disk = conf["image"]["disk_formats"].split(",")
    container = conf["image"]["container_formats"].split(",")
    assert sorted(disk) == sorted(GLANCE_DISK_FORMATS)
    assert sorted(container) == sorted(GLANCE_CONTAINER_FORMATS)
    # Tempest uploads random bytes with element [0] of each list.
    assert (disk[0], container[0]) == ("raw", "bare")


PARSE_WITH_TEMPEST = """
import json, sys
from oslo_config import cfg
from tempest import config
conf = cfg.ConfigOpts()
for group, opts in config._opts:
    conf.register_opts(opts, group=group)
conf(args=[], default_config_files=[sys.argv[1]])
out = {}
for section in sys.argv[2:]:
    groups = [opts for group, opts in config._opts if getattr(group, "name", None) == section]
    known = {opt.name for opts in groups for opt in opts}
    values = {name: conf[section][name] for name in sorted(known)}
    out[section] = {"known": sorted(known), "values": values}
print(json.dumps(out, default=str))
"""


@pytest.mark.skipif(
    not (tempest_run.BIN / "python").exists(), reason="Tempest is not installed (.venv-tempest)"
)
def test_tempest_accepts_every_image_option(tmp_path: Path) -> None:
    """Tempest's own oslo.config parses the file: every key is one of its options
    (oslo.config ignores unknown keys, so a typo would silently keep a default)."""
    conf = tempest_run.build_conf(
        yaml.safe_load(CLOUDS_YAML), [_endpoint("image", "image")], tmp_path
    )
    path = tmp_path / "tempest.conf"
    with path.open("w") as fh:
        conf.write(fh)
    cmd = [str(tempest_run.BIN / "python"), "-c", PARSE_WITH_TEMPEST, str(path), *IMAGE_SECTIONS]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    parsed = json.loads(out.stdout)
    for section in IMAGE_SECTIONS:
        unknown = set(conf[section]) - set(conf.defaults()) - set(parsed[section]["known"])
        assert not unknown, (section, unknown)
    image = parsed["image"]["values"]
    assert image["disk_formats"] == tempest_run.IMAGE_DISK_FORMATS
    assert image["container_formats"] == tempest_run.IMAGE_CONTAINER_FORMATS
    assert image["build_timeout"] == 60
    assert parsed["image-feature-enabled"]["values"]["import_image"] is True
    assert parsed["enforce_scope"]["values"]["glance"] is True
