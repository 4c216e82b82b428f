"""Placeholder: filled in by the groups work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
