from __future__ import annotations

from pathlib import Path

import pytest

from onestack.core import config


def test_defaults_file_env_and_flags_in_that_order(tmp_path: Path) -> None:
    (tmp_path / "onestack.toml").write_text('port = 9000\nregion = "R1"\n[identity]\ntoken_expiration = 60\n')
    s = config.load(tmp_path, environ={"ONESTACK_REGION": "R2", "ONESTACK_IDENTITY__TOKEN_EXPIRATION": "120"})
    assert (s.port, s.region, s.identity.token_expiration) == (9000, "R2", 120)
    s = config.load(tmp_path, environ={}, port=9100, host=None)
    assert s.port == 9100 and s.host == "127.0.0.1"
    assert s.db_url == f"sqlite+aiosqlite:///{tmp_path / 'onestack.db'}"
    assert s.base_url == "http://127.0.0.1:9100"


def test_bad_values_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError):
        config.load(tmp_path, environ={"ONESTACK_PORT": "many"})
    (tmp_path / "onestack.toml").write_text("port = [")
    with pytest.raises(config.ConfigError):
        config.load(tmp_path, environ={})
    (tmp_path / "onestack.toml").write_text("no_such_key = 1\n")
    with pytest.raises(config.ConfigError):
        config.load(tmp_path, environ={})


def test_template_is_valid_and_not_overwritten(tmp_path: Path) -> None:
    config.write_template(tmp_path)
    assert config.load(tmp_path, environ={}).port == config.DEFAULT_PORT
    (tmp_path / "onestack.toml").write_text("port = 1234\n")
    config.write_template(tmp_path)
    assert config.load(tmp_path, environ={}).port == 1234


def test_public_url_wins_and_wildcard_host_is_not_advertised(tmp_path: Path) -> None:
    assert config.load(tmp_path, environ={}, host="0.0.0.0", port=1).base_url == "http://127.0.0.1:1"
    s = config.load(tmp_path, environ={}, public_url="https://cloud.example/")
    assert s.base_url == "https://cloud.example"
