"""Placeholder: filled in by the projects work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
