"""Who may do what: identity tokens mapped onto Swift accounts as Swift's
keystoneauth maps them.

The account ``AUTH_<project_id>`` belongs to that project. A token scoped to it
with an operator role (``admin``, ``member``, ``swiftoperator``) owns it
(``swift_owner``: may set ACLs and account metadata); a reader role reads it;
the reseller admin role owns every account. Anyone else needs an ACL: a
container's read/write ACL (``<project>:<user>`` with ids, names or ``*``, role
names, referrer items for anonymous callers) or the account ACL (``admin``,
``read-write``, ``read-only`` lists of the same identities).

The decision is deferred: this layer puts ``swift.authorize`` in the environ
and the proxy calls it once it knows the container's ACL (``api.common``).
A token that does not validate is treated as no token, so a public container
still answers; the proxy's denial for an anonymous caller is a 401.
"""

from __future__ import annotations

from onestack.core.context import AuthInfo
from onestack.core.errors import CloudError
from onestack.object_store.acl import parse_account_acl, parse_acl, referrer_allowed
from onestack.object_store.api.common import ACL, strip_owner_headers
from onestack.object_store.http import Handler, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState


def _path(req: Request) -> tuple[str, str, str | None, str | None] | None:
    try:
        return req.split()
    except HTTPError:
        return None


def denied(req: Request) -> Response:
    """403 for a known caller, 401 for an anonymous one."""
    status = 403 if req.environ.get("REMOTE_USER") else 401
    return error(status, method=req.method)


class KeystoneAuth:
    def __init__(self, st: ObjectStoreState) -> None:
        conf = st.settings.object_store
        self.st = st
        self.prefix = conf.reseller_prefix
        self.operator_roles = {r.lower() for r in conf.operator_roles}
        self.reader_roles = {r.lower() for r in conf.reader_roles}
        self.reseller_admin = conf.reseller_admin_role.lower()

    def owns(self, ident: AuthInfo, account: str) -> bool:
        """Whether ``ident`` is the owner of ``account`` whatever the container."""
        roles = {r.lower() for r in ident.roles}
        if self.reseller_admin in roles:
            return True
        return (ident.project_id is not None and account == self.prefix + ident.project_id
                and bool(self.operator_roles & roles))

    async def authorize(self, ident: AuthInfo, req: Request) -> Response | None:
        req.environ.pop("swift_owner", None)
        if req.method == "OPTIONS":
            return None
        parts = _path(req)
        if parts is None:
            return error(404, method=req.method)
        _, account, container, obj = parts
        roles = {r.lower() for r in ident.roles}
        if self.reseller_admin in roles:
            req.environ["swift_owner"] = True
            return None
        if container is None and obj is None and req.method == "DELETE":
            return denied(req)  # only a reseller admin deletes an account
        # the owner first (Swift checks ACLs first, so an owner let in by a public
        # read ACL is not recognised as the owner and does not see the ACL headers)
        own = ident.project_id is not None and account == self.prefix + ident.project_id
        if own and self.operator_roles & roles:
            req.environ["swift_owner"] = True
            return None
        referrers, groups = parse_acl(req.environ.get(ACL))
        if groups and self._cross_project(ident, groups):
            return None
        if (referrers and referrer_allowed(req.headers.get("referer"), referrers)
                and (obj is not None or ".rlistings" in groups)):
            return None
        if own and self.reader_roles & roles and req.method in ("GET", "HEAD"):
            return None
        if {g.lower() for g in groups} & roles and own:
            return None
        return await self._account_acl(ident, req, account, container)

    def _cross_project(self, ident: AuthInfo, groups: list[str]) -> bool:
        projects = [ident.project_id, "*"]
        users = [ident.user_id, "*"]
        if ident.project_domain_id in (None, "default") and ident.user_domain_id in (
            None, "default"
        ):
            projects.append(ident.project_name)
            users.append(ident.user_name)
        wanted = {f"{p}:{u}" for p in projects if p for u in users if u}
        return bool(wanted & set(groups))

    def _identities(self, ident: AuthInfo) -> set[str]:
        out = {ident.user_id, f"{ident.project_id}:{ident.user_id}", f"{ident.project_id}:*",
               f"*:{ident.user_id}"}
        if ident.project_name:
            out |= {f"{ident.project_name}:{ident.user_name}", f"{ident.project_name}:*"}
        return out

    async def _account_acl(
        self, ident: AuthInfo, req: Request, account: str, container: str | None
    ) -> Response | None:
        try:
            info = await self.st.listings.account_info(account)
            acl = parse_account_acl(info.metadata.get("X-Account-Access-Control"))
        except (ValueError, CloudError):
            acl = None
        if not acl:
            return denied(req)
        me = self._identities(ident)
        if me & set(acl["admin"]):
            req.environ["swift_owner"] = True
            return None
        if me & set(acl["read-write"]):
            # everything but account changes and container ACL or deletion
            if container is None and req.method not in ("GET", "HEAD"):
                return denied(req)
            return None
        if me & set(acl["read-only"]) and req.method in ("GET", "HEAD"):
            return None
        return denied(req)

    async def anonymous(self, req: Request) -> Response | None:
        if req.method == "OPTIONS":
            return None
        parts = _path(req)
        if parts is None:
            return error(404, method=req.method)
        _, account, _, obj = parts
        if not account.startswith(self.prefix):
            return denied(req)
        referrers, groups = parse_acl(req.environ.get(ACL))
        if (referrers and referrer_allowed(req.headers.get("referer"), referrers)
                and (obj is not None or ".rlistings" in groups)):
            return None
        return denied(req)


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    ks = KeystoneAuth(st)

    async def keystoneauth(req: Request) -> Response:
        if req.environ.get("swift.authorize_override"):
            return await app(req)
        ident = req.environ.get("keystone.identity")
        if ident is None:
            token = req.headers.get("x-auth-token") or req.headers.get("x-storage-token")
            if token and st.validator is not None:
                try:
                    ident = await st.validator.validate(token)
                except CloudError:
                    ident = None  # as no token: ACLs may still let it through
        if ident is None:
            req.environ["swift.authorize"] = ks.anonymous
            req.environ.pop("REMOTE_USER", None)
        else:
            req.environ["keystone.identity"] = ident
            req.environ["REMOTE_USER"] = ident.project_id or ident.user_id
            req.environ["swift.authorize"] = lambda r: ks.authorize(ident, r)
            if ks.reseller_admin in {r.lower() for r in ident.roles}:
                req.environ["reseller_request"] = True
        resp = await app(req)
        if not req.environ.get("swift_owner") and "swift.source" not in req.environ:
            strip_owner_headers(resp.headers)  # the request's were, by ``authorize``
        return resp

    return keystoneauth
