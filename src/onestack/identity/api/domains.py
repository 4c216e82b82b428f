"""Placeholder: filled in by the domains work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
