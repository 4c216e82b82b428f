"""The outermost layer: a transaction id on every response, and errors as responses.

Whatever escapes the chain becomes Swift's answer here: an ``HTTPError`` its
response, a client that went away a 499, anything else a 500 (logged with the
transaction id, never shown to the client).
"""

from __future__ import annotations

import logging

from onestack.core.context import request_id_var
from onestack.object_store.api.common import new_trans_id
from onestack.object_store.asgi import ClientDisconnect
from onestack.object_store.http import Handler, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState

log = logging.getLogger("onestack.object_store")


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    async def catch_errors(req: Request) -> Response:
        trans_id = req.environ.get("swift.trans_id")
        if trans_id is None:
            trans_id = new_trans_id()
            extra = req.headers.get("x-trans-id-extra")
            if extra:
                trans_id += "-" + extra[:32]
            req.environ["swift.trans_id"] = trans_id
            request_id_var.set(trans_id)
        try:
            resp = await app(req)
        except HTTPError as exc:
            resp = exc.response
        except ClientDisconnect:
            resp = error(499, method=req.method)
        except Exception:
            log.exception("%s %s failed (%s)", req.method, req.path, trans_id)
            resp = error(500, method=req.method)
        resp.headers["X-Trans-Id"] = trans_id
        resp.headers["X-Openstack-Request-Id"] = trans_id
        return resp

    return catch_errors
