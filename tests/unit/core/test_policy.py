"""Tests for onestack.core.policy (oslo.policy rule language)."""

from __future__ import annotations

import json
import logging

import pytest

from onestack.core.policy import (
    Enforcer,
    PolicyError,
    PolicyNotAuthorized,
    PolicyNotRegistered,
)

KEYSTONE_DEFAULTS = {
    "admin_required": "role:admin or is_admin:1",
    "service_role": "role:service",
    "service_or_admin": "rule:admin_required or rule:service_role",
    "owner": "user_id:%(user_id)s",
    "admin_or_owner": "rule:admin_required or rule:owner",
    "token_subject": "user_id:%(target.token.user_id)s",
    "admin_or_token_subject": "rule:admin_required or rule:token_subject",
    "service_admin_or_token_subject": "rule:service_or_admin or rule:token_subject",
    "identity:get_project": (
        "(role:reader and system_scope:all) or "
        "(role:reader and domain_id:%(target.project.domain_id)s) or "
        "project_id:%(target.project.id)s"
    ),
    "identity:list_users": (
        "(role:reader and system_scope:all) or "
        "(role:reader and domain_id:%(target.domain_id)s)"
    ),
    "identity:create_user": (
        "(role:admin and system_scope:all) or "
        "(role:admin and token.is_admin_project:True and domain_id:%(target.user.domain_id)s)"
    ),
}


def creds(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "user_id": "u1",
        "project_id": "p1",
        "domain_id": None,
        "roles": ["reader"],
        "system_scope": None,
        "is_admin": False,
        "project_domain_id": "d1",
        "user_domain_id": "d1",
    }
    base.update(kw)
    return base


def one(rule: str, target: dict | None = None, **kw: object) -> bool:
    """Evaluate a single rule string."""
    return Enforcer({"r": rule}).check("r", target or {}, creds(**kw))


# ------------------------------------------------------------- check kinds


def test_always_never_and_empty() -> None:
    assert one("@") is True
    assert one("!") is False
    assert one("") is True
    assert one("   ") is True


def test_role_check_case_insensitive() -> None:
    assert one("role:reader") is True
    assert one("role:Reader", roles=["READER"]) is True
    assert one("role:admin") is False
    assert one("role:admin", roles=[]) is False
    assert one("role:admin", roles=None) is False
    c = creds()
    del c["roles"]
    assert Enforcer({"r": "role:reader"}).check("r", {}, c) is False


def test_role_check_with_target_substitution() -> None:
    assert one("role:%(role.name)s", {"role": {"name": "Reader"}}) is True
    assert one("role:%(role.name)s", {}) is False


def test_is_admin_literal_string_compare() -> None:
    assert one("is_admin:True", is_admin=True) is True
    assert one("is_admin:True", is_admin=False) is False
    assert one("is_admin:False", is_admin=False) is True
    # oslo compares str(True) == "1": no match.
    assert one("is_admin:1", is_admin=True) is False
    assert one("is_admin:1", is_admin=1) is True


def test_generic_literal_and_target_substitution() -> None:
    assert one("system_scope:all", system_scope="all") is True
    assert one("system_scope:all", system_scope=None) is False
    assert one("project_id:%(project_id)s", {"project_id": "p1"}) is True
    assert one("project_id:%(project_id)s", {"project_id": "p2"}) is False
    # Missing target key or missing credential -> False.
    assert one("project_id:%(project_id)s", {}) is False
    assert one("nosuch:x") is False


def test_generic_target_dotted_keys_flat_then_nested() -> None:
    rule = "domain_id:%(target.project.domain_id)s"
    flat = {"target.project.domain_id": "d1"}
    nested = {"target": {"project": {"domain_id": "d1"}}}
    assert one(rule, flat, domain_id="d1") is True
    assert one(rule, nested, domain_id="d1") is True
    assert one(rule, nested, domain_id="d2") is False
    # The whole key wins over the nested path.
    both = {"target.project.domain_id": "d1", "target": {"project": {"domain_id": "d2"}}}
    assert one(rule, both, domain_id="d1") is True
    # Partially flattened: a nested lookup cannot cross the flat key.
    assert one(rule, {"target.project": {"domain_id": "d1"}}, domain_id="d1") is False
    # A non-mapping along the path is just "missing".
    assert one(rule, {"target": "oops"}, domain_id="d1") is False


def test_generic_target_values_are_stringified() -> None:
    assert one("enabled:%(enabled)s", {"enabled": True}, enabled=True) is True
    assert one("count:%(n)s", {"n": 3}, count="3") is True
    assert one("x:pre-%(a)s-%(b.c)s", {"a": 1, "b": {"c": 2}}, x="pre-1-2") is True
    assert one("x:pre-%(a)s-%(b.c)s", {"a": 1}, x="pre-1-2") is False


def test_generic_dotted_credential_path() -> None:
    assert one("token.is_admin_project:True", token={"is_admin_project": True}) is True
    assert one("token.is_admin_project:True", token={"is_admin_project": False}) is False
    assert one("token.is_admin_project:True", token=None) is False
    assert one("token.is_admin_project:True", **{"token.is_admin_project": True}) is True


def test_generic_credential_lists_match_any_element() -> None:
    assert one("groups:g2", groups=["g1", "g2"]) is True
    assert one("groups:g3", groups=["g1", "g2"]) is False
    assert one("groups.id:g2", groups=[{"id": "g1"}, {"id": "g2"}]) is True
    assert one("groups.id:g3", groups=[{"id": "g1"}, {"id": "g2"}]) is False


def test_generic_literal_kind() -> None:
    assert one("True:%(user.enabled)s", {"user": {"enabled": True}}) is True
    assert one("True:%(user.enabled)s", {"user": {"enabled": False}}) is False
    assert one("'Member':%(role.name)s", {"role": {"name": "Member"}}) is True
    assert one("'Member':%(role.name)s", {}) is False


# ---------------------------------------------------------------- operators


def test_and_or_not() -> None:
    assert one("role:reader and project_id:p1") is True
    assert one("role:reader and project_id:p2") is False
    assert one("role:admin or project_id:p1") is True
    assert one("role:admin or project_id:p2") is False
    assert one("not role:admin") is True
    assert one("not not role:admin") is False
    assert one("NOT role:admin AND role:reader Or !") is True


def test_precedence_not_and_or() -> None:
    # a or b and c  ==  a or (b and c)
    assert one("@ or ! and !") is True
    assert one("(@ or !) and !") is False
    # a and b or c  ==  (a and b) or c
    assert one("! and ! or @") is True
    assert one("! and (! or @)") is False
    # not a and b  ==  (not a) and b
    assert one("not ! and @") is True
    assert one("not (! and @)") is True
    assert one("not @ and !") is False
    assert one("not @ or @") is True
    assert one("not (@ or @)") is False
    assert one("@ and ! or ! and @ or ! and @ and @") is False


def test_parentheses_glued_and_nested() -> None:
    assert one("((role:reader))") is True
    assert one("( role:reader )") is True
    assert one("(role:admin or (project_id:p1 and not (user_id:u2)))") is True
    assert one("(role:admin or (project_id:p1 and not (user_id:u1)))") is False
    # A substitution's own parentheses are not grouping parentheses.
    assert one("(project_id:%(target.project.id)s)", {"target.project.id": "p1"}) is True


def test_rule_references_nested() -> None:
    e = Enforcer({"a": "rule:b and role:reader", "b": "rule:c", "c": "project_id:p1", "top": "not rule:a"})
    assert e.check("a", {}, creds()) is True
    assert e.check("a", {}, creds(project_id="p2")) is False
    assert e.check("top", {}, creds(project_id="p2")) is True


def test_undefined_rule_is_false_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    e = Enforcer({"r": "rule:missing or role:nope", "s": "not rule:missing"})
    with caplog.at_level(logging.WARNING, logger="onestack.core.policy"):
        assert e.check("r", {}, creds()) is False
        assert e.check("r", {}, creds()) is False
        assert e.check("s", {}, creds()) is True
    warnings = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1


def test_rule_registered_later_resolves() -> None:
    e = Enforcer({"r": "rule:later"})
    assert e.check("r", {}, creds()) is False
    e.register({"later": "role:reader"})
    assert e.check("r", {}, creds()) is True


@pytest.mark.parametrize(
    "rules",
    [
        {"self": "rule:self"},
        {"a": "rule:b or @", "b": "role:x and rule:a"},
        {"a": "rule:b", "b": "rule:c", "c": "not rule:a"},
    ],
)
def test_recursive_rules_rejected_at_load(rules: dict[str, str]) -> None:
    with pytest.raises(PolicyError, match="recursive"):
        Enforcer(rules)


def test_recursive_rule_via_register_rejected_and_state_kept() -> None:
    e = Enforcer({"a": "rule:b"})
    with pytest.raises(PolicyError, match="recursive"):
        e.register({"b": "rule:a"})
    assert e.rules() == {"a": "rule:b"}
    assert e.check("a", {}, creds()) is False


def test_shared_subrule_is_not_a_cycle() -> None:
    e = Enforcer({"base": "role:reader", "x": "rule:base and rule:base", "y": "rule:x or rule:base"})
    assert e.check("y", {}, creds()) is True


# -------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "bad",
    [
        "role:reader and",
        "or role:reader",
        "role:reader role:admin",
        "(role:reader",
        "role:reader)",
        "()",
        "not",
        "reader",
        ":reader",
        "'quoted'",
        "project_id:%(project_id)",
        "x:100%",
    ],
)
def test_invalid_syntax_raises_policy_error_naming_rule(bad: str) -> None:
    with pytest.raises(PolicyError, match="my:rule"):
        Enforcer({"ok": "@", "my:rule": bad})


def test_policy_error_is_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
    assert issubclass(PolicyNotRegistered, PolicyError)


def test_unregistered_action() -> None:
    e = Enforcer({"r": "@"})
    with pytest.raises(PolicyNotRegistered) as info:
        e.enforce("identity:nope", {}, creds())
    assert info.value.action == "identity:nope"
    with pytest.raises(PolicyNotRegistered):
        e.check("identity:nope", {}, creds())


def test_enforce_raises_not_authorized() -> None:
    e = Enforcer({"identity:x": "role:admin", "identity:y": "role:reader"})
    e.enforce("identity:y", {}, creds())
    with pytest.raises(PolicyNotAuthorized) as info:
        e.enforce("identity:x", {}, creds())
    assert info.value.action == "identity:x"
    assert str(info.value) == "Policy doesn't allow identity:x to be performed."


def test_non_string_rule_rejected() -> None:
    with pytest.raises(PolicyError):
        Enforcer({"r": ["role:admin"]})  # type: ignore[dict-item]


def test_conflicting_reregistration_rejected() -> None:
    e = Enforcer({"r": "role:admin"})
    e.register({"r": "role:admin"})  # identical: fine
    with pytest.raises(PolicyError, match="already registered"):
        e.register({"r": "role:reader"})
    assert e.rules()["r"] == "role:admin"


# ------------------------------------------------------------ overrides file


def test_overrides_yaml_replace_defaults(tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"identity:get_project": "role:admin"\n"custom": "role:reader"\n"open":\n')
    e = Enforcer(KEYSTONE_DEFAULTS, path)
    target = {"target.project.id": "p1"}
    assert e.check("identity:get_project", target, creds()) is False
    assert e.check("identity:get_project", target, creds(roles=["Admin"])) is True
    assert e.check("custom", {}, creds()) is True
    assert e.check("open", {}, creds()) is True
    assert e.rules()["identity:get_project"] == "role:admin"
    assert e.rules()["identity:list_users"] == KEYSTONE_DEFAULTS["identity:list_users"]


def test_overrides_win_over_later_register(tmp_path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"compute:start": "!"}))
    e = Enforcer({}, str(path))
    e.register({"compute:start": "@", "compute:stop": "@"})
    assert e.check("compute:start", {}, creds()) is False
    assert e.check("compute:stop", {}, creds()) is True


def test_missing_and_empty_overrides_file(tmp_path) -> None:
    assert Enforcer({"r": "@"}, tmp_path / "absent.yaml").rules() == {"r": "@"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert Enforcer({"r": "@"}, empty).rules() == {"r": "@"}


def test_invalid_overrides_file(tmp_path) -> None:
    bad_rule = tmp_path / "bad_rule.yaml"
    bad_rule.write_text('"identity:list_users": "role:admin and"\n')
    with pytest.raises(PolicyError, match="identity:list_users"):
        Enforcer(KEYSTONE_DEFAULTS, bad_rule)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("a: [unclosed\n")
    with pytest.raises(PolicyError):
        Enforcer({}, bad_yaml)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- a\n- b\n")
    with pytest.raises(PolicyError):
        Enforcer({}, not_mapping)


# ------------------------------------------------------- keystone defaults


@pytest.fixture
def keystone() -> Enforcer:
    return Enforcer(KEYSTONE_DEFAULTS)


def test_keystone_admin_required(keystone: Enforcer) -> None:
    assert keystone.check("admin_required", {}, creds(roles=["admin"])) is True
    assert keystone.check("admin_required", {}, creds(roles=["member"])) is False
    assert keystone.check("admin_required", {}, creds(roles=[], is_admin=1)) is True
    assert keystone.check("admin_or_owner", {"user_id": "u1"}, creds()) is True
    assert keystone.check("admin_or_owner", {"user_id": "u2"}, creds()) is False


def test_keystone_get_project(keystone: Enforcer) -> None:
    target = {"target": {"project": {"id": "p9", "domain_id": "d9"}}}
    act = "identity:get_project"
    # system reader
    assert keystone.check(act, target, creds(system_scope="all", project_id=None)) is True
    # domain reader of the project's domain
    assert keystone.check(act, target, creds(project_id=None, domain_id="d9")) is True
    assert keystone.check(act, target, creds(project_id=None, domain_id="d8")) is False
    # domain-scoped but without reader
    assert keystone.check(act, target, creds(project_id=None, domain_id="d9", roles=["x"])) is False
    # project-scoped to the project itself (any role)
    assert keystone.check(act, target, creds(project_id="p9", roles=["member"])) is True
    assert keystone.check(act, target, creds(project_id="p1")) is False


def test_keystone_list_users(keystone: Enforcer) -> None:
    act = "identity:list_users"
    assert keystone.check(act, {"target.domain_id": "d1"}, creds(system_scope="all")) is True
    assert keystone.check(act, {"target.domain_id": "d1"}, creds(domain_id="d1")) is True
    assert keystone.check(act, {"target.domain_id": "d1"}, creds(domain_id="d2")) is False
    assert keystone.check(act, {}, creds(domain_id="d1")) is False
    assert keystone.check(act, {"target.domain_id": "d1"}, creds(domain_id="d1", roles=["member"])) is False


def test_keystone_create_user_admin_project(keystone: Enforcer) -> None:
    act = "identity:create_user"
    target = {"target": {"user": {"domain_id": "d1"}}}
    admin = creds(roles=["admin"], domain_id="d1", token={"is_admin_project": True})
    assert keystone.check(act, target, admin) is True
    admin["token"] = {"is_admin_project": False}
    assert keystone.check(act, target, admin) is False
    with pytest.raises(PolicyNotAuthorized):
        keystone.enforce(act, target, admin)


def test_none_never_matches_none() -> None:
    # oslo compares str(None) == "None"; an unscoped caller (project_id None)
    # must not pass "project_id:%(target.project.id)s" on a target without one.
    assert one("project_id:%(target.project.id)s", {"target": {"project": {"id": None}}},
               project_id=None) is False
    assert one("project_id:%(project_id)s", {}, project_id=None) is False
