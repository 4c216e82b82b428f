"""Placeholder: filled in by the endpoints work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
