"""Swift's request constraints: limits from the settings, Swift's statuses and texts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from onestack.core.config import ObjectStoreSettings, Settings
from onestack.object_store import constraints
from onestack.object_store.http import Headers, HTTPError, Request


def req(headers: dict[str, str], method: str = "PUT") -> Request:
    return Request(method, "/v1/AUTH_t/c/o", headers=Headers(headers))


def refusal(fn: Callable[..., None], *args: Any, **kw: Any) -> tuple[int, str]:
    with pytest.raises(HTTPError) as exc:
        fn(*args, **kw)
    resp = exc.value.response
    assert isinstance(resp.body, bytes)
    return resp.status, resp.body.decode()


@pytest.mark.parametrize("target", ["account", "container", "object"])
def test_check_metadata_limits_follow_settings(target: str) -> None:
    small = ObjectStoreSettings(max_meta_count=2, max_meta_name_length=4,
                                max_meta_value_length=5, max_meta_overall_size=12)
    prefix = f"X-{target.title()}-Meta-"
    constraints.check_metadata(req({prefix + "abcd": "12345", "X-Other-Meta-Long": "x" * 99}),
                               target, small)
    assert refusal(constraints.check_metadata, req({prefix + "abcde": "1"}), target, small) == \
        (400, f"Metadata name too long: x-{target}-meta-Abcde")
    assert refusal(constraints.check_metadata, req({prefix + "a": "123456"}), target, small) == \
        (400, f"Metadata value longer than 5: x-{target}-meta-A")
    three = {prefix + k: "1" for k in "abc"}
    assert refusal(constraints.check_metadata, req(three), target, small) == \
        (400, "Too many metadata items; max 2")
    big = {prefix + "ab": "12345", prefix + "cd": "12345"}  # 14 bytes
    assert refusal(constraints.check_metadata, req(big), target, small) == \
        (400, "Total metadata too large; max 12")


def test_account_and_container_metadata_must_be_utf8() -> None:
    bad = "\xff\xfe"  # latin-1 text of bytes that are not UTF-8
    for target in ("account", "container"):
        assert refusal(constraints.check_metadata,
                       req({f"X-{target}-Meta-A": bad}), target) == \
            (400, "Metadata must be valid UTF-8")
    constraints.check_metadata(req({"X-Object-Meta-A": bad}), "object")
    # UTF-8 sent by a client arrives as latin-1 text of its bytes and is fine
    constraints.check_metadata(req({"X-Container-Meta-A": "é".encode().decode("latin-1")}),
                               "container")


def test_names() -> None:
    constraints.check_container_name("c" * 256)
    assert refusal(constraints.check_container_name, "c" * 257) == \
        (400, "Container name length of 257 longer than 256")
    assert refusal(constraints.check_account_name, "a" * 257) == \
        (400, "Account name length of 257 longer than 256")
    assert refusal(constraints.check_object_name, "o" * 11,
                   ObjectStoreSettings(max_object_name_length=10)) == \
        (400, "Object name length of 11 longer than 10")


def test_check_object_creation_order_and_content_type() -> None:
    # the length comes before everything else
    r = req({"Content-Length": "6000000000", "X-Delete-At": "bad"})
    assert refusal(constraints.check_object_creation, r, "o")[0] == 413
    assert refusal(constraints.check_object_creation, req({"Content-Length": "1"}), "o") == \
        (400, "No content type")
    r = req({"Content-Length": "1", "Content-Type": "text/plain", "X-Delete-After": "10"})
    constraints.check_object_creation(r, "o", now=1000.0)
    assert r.headers["X-Delete-At"] == "0000001010"
    assert "X-Delete-After" not in r.headers
    r = req({"Content-Length": "1", "Content-Type": "text/plain; swift_bytes=3"})
    r.environ["swift.content_type_overridden"] = True  # a middleware's own parameter
    constraints.check_object_creation(r, "o")
    r = req({"Content-Length": "1", "Content-Type": "\xff"})
    assert refusal(constraints.check_object_creation, r, "o") == (400, "Invalid Content-Type")


def test_swift_info(tmp_path: Path) -> None:
    info = constraints.swift_info(ObjectStoreSettings(max_file_size=1234))
    assert info["max_file_size"] == 1234
    whole = Settings(data_dir=tmp_path, object_store=ObjectStoreSettings(max_meta_count=7))
    assert constraints.swift_info(whole)["max_meta_count"] == 7
    assert info["valid_api_versions"] == ["v1", "v1.0"]
    assert info["policies"] == [{"name": "Policy-0", "aliases": "Policy-0", "default": True}]
    for key in ("max_meta_name_length", "max_meta_value_length", "max_meta_count",
                "max_meta_overall_size", "container_listing_limit", "account_listing_limit",
                "max_object_name_length", "max_container_name_length",
                "max_account_name_length", "max_header_size", "extra_header_count",
                "version", "strict_cors_mode", "allow_account_management",
                "account_autocreate"):
        assert key in info
