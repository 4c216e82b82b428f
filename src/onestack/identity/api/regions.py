"""Placeholder: filled in by the regions work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
