"""Placeholder: filled in by the application_credentials work."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
