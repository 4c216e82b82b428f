"""Policy engine speaking oslo.policy's rule language.

Grammar (``not`` binds tighter than ``and``, which binds tighter than ``or``;
the keywords are case-insensitive)::

    rule     := ""                        # empty (or blank) rule: always allow
              | or_expr
    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | "(" or_expr ")" | check
    check    := "@"                       # always
              | "!"                       # never
              | "rule:" NAME              # another rule; undefined -> False
              | "role:" MATCH             # creds["roles"] contains MATCH,
                                          #   compared case-insensitively
              | KEY ":" MATCH             # generic check

Tokens are separated by whitespace; parentheses may be glued to the start or
end of a check (``(role:reader``), as in oslo.  ``MATCH`` may use
``%(name)s`` substitutions taken from the target: ``name`` is looked up as a
whole key first (``target["target.project.id"]``), then as a dotted path into
nested mappings.  A missing target key makes the check False.

Generic checks compare strings, as oslo does: ``KEY`` is a dotted path into
the credentials (``token.is_admin_project``), tried as a whole key first,
and the check holds when ``str(value) == MATCH``; when a value on the path is
a list, any element may match.  If ``KEY`` is a Python literal (``True``,
``'Member'``, ``1``) it is compared instead, so ``True:%(user.enabled)s`` works.
Thus ``is_admin:True`` matches ``creds["is_admin"] is True`` but
``is_admin:1`` does not (``str(True) != "1"``).

Rules are parsed once and compiled into closures; ``rule:`` references are
inlined, and a rule that (indirectly) refers to itself is rejected with
:class:`PolicyError` when rules are loaded or registered.

One deliberate difference from oslo: a ``None`` credential or target value never
matches (oslo compares ``str(None)``, so an unscoped caller would pass
``project_id:%(target.project.id)s`` on a target without a project).
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

LOG = logging.getLogger(__name__)

CheckFn = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
Node = tuple[Any, ...]  # parsed rule tree, e.g. ("and", (node, node))

_MISSING = object()
_SEQUENCES = (list, tuple, set, frozenset)
_SUBST_RE = re.compile(r"%\(([^()]+)\)s")
_CONSTANT: tuple[CheckFn, CheckFn] = (lambda t, c: False, lambda t, c: True)


class PolicyError(ValueError):
    """A policy definition is invalid."""


class PolicyNotRegistered(PolicyError):
    """An action was checked that no rule defines."""

    def __init__(self, action: str) -> None:
        super().__init__(f"Policy {action} has not been registered")
        self.action = action


class PolicyNotAuthorized(Exception):
    """The credentials do not satisfy the action's rule."""

    def __init__(self, action: str) -> None:
        super().__init__(f"Policy doesn't allow {action} to be performed.")
        self.action = action


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for tok in text.split():
        core = tok.lstrip("(")
        stripped = core.rstrip(")")
        tokens.extend("(" * (len(tok) - len(core)))
        if stripped:
            low = stripped.lower()
            tokens.append(low if low in ("and", "or", "not") else stripped)
        tokens.extend(")" * (len(core) - len(stripped)))
    return tokens


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Node:
    """Parse a rule string into a tree; raises PolicyError when invalid."""
    tokens = _tokenize(text)
    if not tokens:
        return ("true",)
    node, pos = _parse_seq(tokens, 0, 0)
    if pos != len(tokens):
        raise PolicyError(f"unexpected {tokens[pos]!r}")
    return node


def _parse_seq(tokens: list[str], pos: int, level: int) -> tuple[Node, int]:
    """level 0 parses an ``or`` chain, level 1 an ``and`` chain."""
    op = ("or", "and")[level]
    items: list[Node] = []
    while True:
        node, pos = _parse_seq(tokens, pos, 1) if level == 0 else _parse_unary(tokens, pos)
        items.append(node)
        if pos >= len(tokens) or tokens[pos] != op:
            return (items[0] if len(items) == 1 else (op, tuple(items))), pos
        pos += 1


def _parse_unary(tokens: list[str], pos: int) -> tuple[Node, int]:
    if pos >= len(tokens):
        raise PolicyError("unexpected end of rule")
    tok = tokens[pos]
    if tok == "not":
        node, pos = _parse_unary(tokens, pos + 1)
        return ("not", node), pos
    if tok == "(":
        node, pos = _parse_seq(tokens, pos + 1, 0)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise PolicyError("missing ')'")
        return node, pos + 1
    if tok in ("and", "or", ")"):
        raise PolicyError(f"unexpected {tok!r}")
    if tok in ("@", "!"):
        return (("true",) if tok == "@" else ("false",)), pos + 1
    kind, sep, match = tok.partition(":")
    if not sep or not kind:
        raise PolicyError(f"invalid check {tok!r} (expected KIND:MATCH)")
    if any("%" in lit for lit in _SUBST_RE.split(match)[::2]):
        raise PolicyError(f"invalid substitution in {tok!r} (only %(name)s is supported)")
    if kind in ("rule", "role"):
        return (kind, match), pos + 1
    return ("generic", kind, match), pos + 1


def _target_value(target: Mapping[str, Any], key: str, segs: tuple[str, ...]) -> Any:
    """Whole key first, then nested dotted lookup; _MISSING if absent."""
    try:
        return target[key]
    except (KeyError, TypeError):
        if len(segs) < 2:
            return _MISSING
    cur: Any = target
    for seg in segs:
        try:
            cur = cur[seg]
        except (KeyError, TypeError, IndexError):
            return _MISSING
    return cur


def _matcher(match: str) -> Callable[[Mapping[str, Any]], str | None]:
    """Function of the target giving the substituted match (None: key missing)."""
    parts = _SUBST_RE.split(match)  # literal, key, literal, key, ..., literal
    if len(parts) == 1:
        return lambda t: match
    lits, keys = parts[::2], [(k, tuple(k.split("."))) for k in parts[1::2]]
    if len(keys) == 1 and lits == ["", ""]:
        key, segs = keys[0]

        def single(t: Mapping[str, Any]) -> str | None:
            value = _target_value(t, key, segs)
            return None if value is _MISSING or value is None else str(value)

        return single

    def subst(t: Mapping[str, Any]) -> str | None:
        out = [lits[0]]
        for (key, segs), lit in zip(keys, lits[1:]):
            value = _target_value(t, key, segs)
            if value is _MISSING or value is None:
                return None
            out += (str(value), lit)
        return "".join(out)

    return subst


def _find(value: Any, segs: tuple[str, ...], match: str) -> bool:
    """oslo's _find_in_dict: walk segs, fanning out over lists."""
    for i, seg in enumerate(segs):
        try:
            value = value[seg]
        except (KeyError, TypeError, IndexError):
            return False
        if isinstance(value, _SEQUENCES):
            return any(_find(v, segs[i + 1:], match) for v in value)
    return str(value) == match


def _cred_matches(creds: Mapping[str, Any], key: str, segs: tuple[str, ...], match: str) -> bool:
    value = creds.get(key, _MISSING)
    if value is None:
        return False
    if value is _MISSING:
        return len(segs) > 1 and _find(creds, segs, match)
    if isinstance(value, _SEQUENCES):
        return any(str(v) == match for v in value)
    return str(value) == match


@functools.lru_cache(maxsize=4096)  # pure: every enforcer of the process shares them
def _generic(kind: str, match: str) -> CheckFn:
    matcher = _matcher(match)
    try:
        literal = str(ast.literal_eval(kind))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        segs = tuple(kind.split("."))

        def generic(t: Mapping[str, Any], c: Mapping[str, Any]) -> bool:
            m = matcher(t)
            return m is not None and _cred_matches(c, kind, segs, m)

        return generic
    return lambda t, c: matcher(t) == literal


def _role(match: str) -> CheckFn:
    matcher = _matcher(match)

    def role(t: Mapping[str, Any], c: Mapping[str, Any]) -> bool:
        m, roles = matcher(t), c.get("roles")
        if m is None or not roles:
            return False
        m = m.lower()
        for r in roles:
            if isinstance(r, str) and r.lower() == m:
                return True
        return False

    return role


class Enforcer:
    """Holds default rules plus file overrides, compiled for fast checks."""

    def __init__(self, defaults: Mapping[str, str],
                 overrides_file: str | os.PathLike[str] | None = None) -> None:
        self._defaults: dict[str, str] = {}
        self._overrides = _load_file(overrides_file) if overrides_file is not None else {}
        self._warned: set[str] = set()
        self._effective: dict[str, str] = {}
        self._compiled: dict[str, CheckFn] = {}
        self.register(defaults)

    def register(self, defaults: Mapping[str, str]) -> None:
        """Add default rules (file overrides still win); conflicting redefinition raises."""
        merged = dict(self._defaults)
        for name, text in defaults.items():
            _validate_entry(name, text)
            if name in merged and merged[name] != text:
                raise PolicyError(
                    f"Policy rule {name!r} already registered as {merged[name]!r}")
            merged[name] = text
        effective = {**merged, **self._overrides}
        compiled = self._compile_all(effective)
        self._defaults, self._effective, self._compiled = merged, effective, compiled

    def rules(self) -> dict[str, str]:
        """The effective rule strings (defaults with file overrides applied)."""
        return dict(self._effective)

    def check(self, action: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> bool:
        """Return whether *creds* may perform *action* on *target*."""
        fn = self._compiled.get(action)
        if fn is None:
            raise PolicyNotRegistered(action)
        return fn(target, creds)

    def enforce(self, action: str, target: Mapping[str, Any], creds: Mapping[str, Any]) -> None:
        """Raise PolicyNotAuthorized unless check() allows the action."""
        if not self.check(action, target, creds):
            raise PolicyNotAuthorized(action)

    def _compile_all(self, texts: Mapping[str, str]) -> dict[str, CheckFn]:
        done: dict[str, CheckFn] = {}
        stack: list[str] = []

        def rule(name: str) -> CheckFn:
            fn = done.get(name)
            if fn is not None:
                return fn
            if name not in texts:
                return self._undefined(name)
            if name in stack:
                cycle = " -> ".join(stack[stack.index(name):] + [name])
                raise PolicyError(f"Policy rule {name!r} is recursive: {cycle}")
            try:
                tree = _parse(texts[name])
            except PolicyError as exc:
                raise PolicyError(
                    f"Invalid policy rule {name!r} ({texts[name]!r}): {exc}") from None
            stack.append(name)
            fn = done[name] = build(tree)
            stack.pop()
            return fn

        def build(node: Node) -> CheckFn:
            kind = node[0]
            if kind in ("true", "false"):
                return _CONSTANT[kind == "true"]
            if kind == "rule":
                return rule(node[1])
            if kind == "role":
                return _role(node[1])
            if kind == "generic":
                return _generic(node[1], node[2])
            if kind == "not":
                inner = build(node[1])
                return lambda t, c: not inner(t, c)
            fns = tuple(build(n) for n in node[1])
            if kind == "and":
                if len(fns) == 2:
                    a, b = fns
                    return lambda t, c: a(t, c) and b(t, c)
                return lambda t, c: all(f(t, c) for f in fns)
            if len(fns) == 2:
                a, b = fns
                return lambda t, c: a(t, c) or b(t, c)
            return lambda t, c: any(f(t, c) for f in fns)

        for name in texts:
            rule(name)
        return done

    def _undefined(self, name: str) -> CheckFn:
        def undefined(t: Mapping[str, Any], c: Mapping[str, Any]) -> bool:
            if name not in self._warned:
                self._warned.add(name)
                LOG.warning("Policy references undefined rule %r; treating it as False", name)
            return False

        return undefined


def _validate_entry(name: Any, text: Any) -> None:
    if not isinstance(name, str) or not isinstance(text, str):
        raise PolicyError(f"Policy rule {name!r} must map a string name to a rule string")


def _load_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a policy.yaml / policy.json; a missing file means no overrides."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"Cannot parse policy file {os.fspath(path)}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyError(f"Policy file {os.fspath(path)} must contain a mapping")
    rules = {name: "" if text is None else text for name, text in data.items()}
    for name, text in rules.items():
        _validate_entry(name, text)
    return rules
