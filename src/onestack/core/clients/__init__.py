"""Clients for calling a service's public API from another service.

Every client takes an ``httpx.AsyncClient`` whose transport decides how the call
travels: ``httpx.ASGITransport`` to the service's app in the all-in-one process,
real HTTP across hosts.
"""
