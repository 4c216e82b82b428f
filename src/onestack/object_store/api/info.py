"""``GET /info``: what this cluster supports (Swift's capability discovery).

The ``swift`` section comes from the constraints; each middleware adds its own
section when the chain is built (``ObjectStoreState.register``). Filters
``?swiftinfo_disallowed_sections``-style admin access is not offered: the admin
sections need an HMAC key that we do not configure (as Swift without
``admin_key``).
"""

from __future__ import annotations

import json

from onestack.object_store.http import Headers, Request, Response, error
from onestack.object_store.state import ObjectStoreState


async def handle(st: ObjectStoreState, req: Request) -> Response:
    if req.method not in ("GET", "HEAD", "OPTIONS"):
        return error(405, headers={"Allow": "GET, HEAD, OPTIONS"}, method=req.method)
    if req.method == "OPTIONS":
        return Response(200, Headers({"Allow": "GET, HEAD, OPTIONS", "Content-Length": "0"}))
    if "swiftinfo_sig" in req.query:
        return error(401, method=req.method)  # no admin key is configured
    body = json.dumps(st.capabilities, sort_keys=True).encode()
    return Response(200, Headers({"Content-Type": "application/json; charset=UTF-8",
                                  "Content-Length": str(len(body))}), body)
