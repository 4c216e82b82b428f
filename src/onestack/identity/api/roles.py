"""Placeholder: filled in by the roles work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
