"""Placeholder: filled in by the credentials work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
