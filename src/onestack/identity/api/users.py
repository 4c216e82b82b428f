"""Placeholder: filled in by the users work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
