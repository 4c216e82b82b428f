"""The innermost handler: ``/info``, ``/healthcheck``, ``/crossdomain.xml``, and
``/v1/<account>[/<container>[/<object>]]`` dispatched to the account, container and
object controllers."""

from __future__ import annotations

from onestack.object_store.api import account, container, info
from onestack.object_store.api import object as obj_api
from onestack.object_store.http import Handler, Headers, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState

VERSIONS = ("v1", "v1.0")
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")


# Swift's crossdomain middleware default: Flash and Silverlight clients of any
# domain may call the API (they still need a token).
CROSSDOMAIN = (
    '<?xml version="1.0"?>\n'
    '<!DOCTYPE cross-domain-policy SYSTEM '
    '"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >\n'
    "<cross-domain-policy>\n"
    '<allow-access-from domain="*" secure="false" />\n'
    "</cross-domain-policy>"
)


def _text(body: str, content_type: str, method: str) -> Response:
    data = body.encode()
    return Response(200, Headers({"Content-Type": content_type,
                                  "Content-Length": str(len(data))}),
                    b"" if method == "HEAD" else data)


def proxy(st: ObjectStoreState) -> Handler:
    conf = st.settings.object_store
    st.register("crossdomain", cross_domain_policies='<allow-access-from domain="*" '
                'secure="false" />')

    async def handle(req: Request) -> Response:
        if req.path.rstrip("/") == "/info":
            return await info.handle(st, req)
        if req.path == "/healthcheck" and req.method in ("GET", "HEAD"):
            return _text("OK", "text/plain", req.method)
        if req.path == "/crossdomain.xml" and req.method in ("GET", "HEAD"):
            return _text(CROSSDOMAIN, "application/xml; charset=UTF-8", req.method)
        version, acct, cont, obj = req.split()
        if version not in VERSIONS:
            return error(412, "Invalid path", method=req.method)
        if req.method not in METHODS:
            return error(405, headers={"Allow": ", ".join(METHODS)}, method=req.method)
        if len(acct.encode()) > conf.max_account_name_length:
            return error(400, f"Account name length of {len(acct.encode())} longer than "
                              f"{conf.max_account_name_length}", method=req.method)
        if obj is not None:
            assert cont is not None
            return await obj_api.handle(st, req, acct, cont, obj)
        if cont is not None:
            return await container.handle(st, req, acct, cont)
        return await account.handle(st, req, acct)

    async def guarded(req: Request) -> Response:
        try:
            return await handle(req)
        except HTTPError as exc:
            return exc.response

    return guarded
