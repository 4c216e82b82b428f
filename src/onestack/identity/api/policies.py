"""Placeholder: filled in by the policies work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
