"""Placeholder: filled in by the limits work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
