"""Placeholder: filled in by the services work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
