"""Config drives as Nova makes them: an ISO 9660 image with Rock Ridge and Joliet
names, volume label ``config-2``, holding the files the compute service renders
(``InstanceMetadata.config_drive_files``: ``openstack/<version>/meta_data.json``,
``user_data``, ``network_data.json``, ``vendor_data*.json``, ``ec2/<version>/...``).

Written with pycdlib (pure Python, no ``genisoimage``); the callers run
``make_iso`` in a thread, off the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onestack.compute.drivers.base import DriverError, InstanceSpec

LABEL = "config-2"  # what cloud-init and the test image look for
PUBLISHER = "OneStack"


def fallback_files(spec: InstanceSpec) -> dict[str, bytes]:
    """The files of a config drive for a spec that carries none (a driver used
    without the compute service): ``openstack/latest/meta_data.json`` and
    ``user_data`` from the spec alone."""
    meta: dict[str, Any] = {
        "uuid": spec.uuid, "name": spec.name, "hostname": spec.name,
        "launch_index": 0, "devices": [],
    }
    if spec.metadata:
        meta["meta"] = dict(spec.metadata)
    if spec.key_data:
        meta["public_keys"] = {"key": spec.key_data}
        meta["keys"] = [{"name": "key", "type": "ssh", "data": spec.key_data}]
    files = {"openstack/latest/meta_data.json": json.dumps(meta).encode()}
    if spec.user_data:
        try:
            files["openstack/latest/user_data"] = base64.b64decode(spec.user_data)
        except (binascii.Error, ValueError):
            files["openstack/latest/user_data"] = spec.user_data.encode()
    return files


def make_iso(path: Path, files: Mapping[str, bytes]) -> None:
    """Write the ISO at ``path`` (through a temporary file and a rename).

    Raises: DriverError (a bad path in ``files``, pycdlib missing or failing)."""
    try:
        import pycdlib
    except ImportError as exc:  # a dependency of the package; only this driver needs it
        raise DriverError("config drive: pycdlib is not installed") from exc

    iso = pycdlib.PyCdlib()
    # interchange level 4 (ISO 9660:1999) takes Nova's names as they are, as
    # genisoimage's -allow-lowercase -allow-multidot -l does; Rock Ridge and
    # Joliet carry them too
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=LABEL,
            pub_ident_str=PUBLISHER, app_ident_str=PUBLISHER)
    made: set[str] = set()
    try:
        for name in sorted(files):
            parts = [p for p in name.split("/") if p]
            if not parts or any(p in (".", "..") for p in parts):
                raise DriverError(f"config drive: bad path {name!r}")
            for depth in range(1, len(parts)):
                d = "/" + "/".join(parts[:depth])
                if d not in made:
                    iso.add_directory(d, rr_name=parts[depth - 1], joliet_path=d)
                    made.add(d)
            data = files[name]
            full = "/" + "/".join(parts)
            iso.add_fp(io.BytesIO(data), len(data), full, rr_name=parts[-1],
                       joliet_path=full)
        tmp = path.with_name(path.name + ".tmp")
        iso.write(str(tmp))
        os.rename(tmp, path)
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise DriverError(f"config drive: {exc}") from exc
    finally:
        iso.close()


def read_iso(path: Path) -> tuple[str, dict[str, bytes]]:
    """(volume label, path -> content by Rock Ridge names) of an ISO: for tests
    and checks."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().rstrip()
        out: dict[str, bytes] = {}
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                full = f"{root.rstrip('/')}/{name}"
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=full)
                out[full.lstrip("/")] = buf.getvalue()
        return label, out
    finally:
        iso.close()
