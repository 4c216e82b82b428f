"""Placeholder: filled in by the role_assignments work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
