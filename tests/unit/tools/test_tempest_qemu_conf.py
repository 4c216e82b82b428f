"""tools/tempest_run.py's ``--qemu`` mode: its arguments and the [validation]
section it writes (the run itself is scripts/test's Tempest stage with real guests)."""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))

import tempest_run


def test_validation_section_for_ssh_into_real_guests() -> None:
    conf = configparser.ConfigParser(interpolation=None)
    conf["validation"] = {"run_validation": "false"}  # what build_conf wrote first
    tempest_run.add_validation_options(conf)
    v = conf["validation"]
    assert v["run_validation"] == "true"
    assert (v["connect_method"], v["auth_method"], v["ip_version_for_ssh"]) == (
        "floating", "keypair", "4")
    assert v["image_ssh_user"] == v["image_alt_ssh_user"] == "root"
    assert v["security_group"] == v["security_group_rules"] == "true"


def test_qemu_needs_start_and_has_its_own_workspace(capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    with pytest.raises(SystemExit):
        tempest_run.parse_args(["--qemu", "tempest.api.compute"])
    assert "--qemu needs --start" in capsys.readouterr().err
    args, extra = tempest_run.parse_args(["tempest.api.compute", "--", "--serial"])
    assert (args.qemu, args.workdir.name, extra) == (False, ".tempest", ["--serial"])
    if os.geteuid() != 0:
        with pytest.raises(SystemExit):
            tempest_run.parse_args(["--start", "--qemu", "x"])
        assert "needs root" in capsys.readouterr().err
    else:
        args, _ = tempest_run.parse_args(["--start", "--qemu", "x"])
        assert args.qemu and args.workdir.name == ".tempest-qemu"
