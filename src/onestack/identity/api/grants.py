"""Placeholder: filled in by the grants work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
