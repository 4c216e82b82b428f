"""Account quotas (Swift's ``account_quotas``): caps on an account's bytes and
object count, overall and for the storage policy, that only a reseller admin
may set or remove.

The quotas are ``X-Account-Quota-Bytes``, ``X-Account-Quota-Count`` and
``X-Account-Quota-{Bytes,Count}-Policy-<policy name>`` (remove with the usual
``X-Remove-`` form or an empty value); the older ``X-Account-Meta-Quota-Bytes``
is read as ``X-Account-Quota-Bytes``. They are kept in system metadata, so the
account's owner can read them (its HEAD shows them) but not change them: any of
them in an account PUT or POST of somebody else is refused with 403.

An object PUT that would take the account over a quota answers 413 ``Upload
exceeds quota.`` (``... policy quota.``), once the caller's authorization has
succeeded (so that strangers still see their 401 or 403), and nothing is stored.
A reseller admin is not held by quotas. As with container quotas, an upload
without a length is counted as it streams (Swift cannot refuse those).
"""

from __future__ import annotations

from onestack.object_store.constraints import DEFAULT_POLICY
from onestack.object_store.http import Authorize, Handler, HTTPError, Request, Response, error
from onestack.object_store.middleware.container_quotas import capped
from onestack.object_store.service.listings import AccountInfo
from onestack.object_store.state import ObjectStoreState

EXCEEDED = "Upload exceeds quota."
POLICY_EXCEEDED = "Upload exceeds policy quota."
KINDS = ("Quota-Bytes", "Quota-Count")
# the one storage policy: index 0, by its name
POLICY_INDEX = 0
POLICY_NAME = str(DEFAULT_POLICY["name"])


def _wanted(req: Request, kind: str) -> dict[str, str | None]:
    """The quotas of one ``kind`` a request sets: sysmeta header -> value (``""``
    removes, ``None`` not set). The per-policy forms leave the request here (the
    proxy does not know them); the others would be ignored by it anyway."""
    h = req.headers
    out: dict[str, str | None] = {}
    value = h.get(f"x-account-{kind}")
    if h.get(f"x-remove-account-{kind}"):
        value = ""
    out[f"X-Account-Sysmeta-{kind}"] = value
    tail = f"account-{kind}-policy-{POLICY_NAME}"
    policy_value = h.pop(f"x-{tail}")
    if h.get(f"x-remove-{tail}"):
        policy_value = ""
    out[f"X-Account-Sysmeta-{kind}-Policy-{POLICY_INDEX}"] = policy_value
    return out


def _translate(req: Request) -> Response | None:
    """Turn the quota headers of an account PUT or POST into system metadata, or
    the refusal: 403 for a caller who is no reseller admin, 400 for a value that
    is not a whole number."""
    for legacy in ("X-Account-Meta-Quota-Bytes", "X-Remove-Account-Meta-Quota-Bytes"):
        value = req.headers.get(legacy)
        current = legacy.replace("-Meta-", "-")
        if value is not None and not req.headers.get(current):
            req.headers[current] = value
    wanted: dict[str, str | None] = {}
    for kind in KINDS:
        wanted.update(_wanted(req, kind))
    if req.environ.get("reseller_request") is not True:
        if any(v is not None for v in wanted.values()):
            return error(403, method=req.method)
        return None
    if any(v and not v.isdigit() for v in wanted.values()):
        return error(400, method=req.method)
    for header, value in wanted.items():
        if value is not None:
            req.headers[header] = value
    return None


async def reject_writes(app: Handler, req: Request, refusal: Response) -> Response:
    """Send ``req`` on with an authorization that answers ``refusal`` to any write
    it allows: the caller learns of the quota only once the proxy has found it may
    write there (Swift defers the answer so, for container ACLs). Reads (a large
    object's segments, a version's HEAD) are still decided as before."""
    check: Authorize | None = req.environ.get("swift.authorize")
    if check is None:
        return refusal

    async def authorize(r: Request) -> Response | None:
        denial = await check(r)
        if denial is None and r.method not in ("GET", "HEAD"):
            return refusal
        return denial

    req.environ["swift.authorize"] = authorize
    return await app(req)


def _show_quotas(resp: Response) -> None:
    """The quotas in an account's response, where its owner can read them (the
    gatekeeper hides the system metadata they are kept in)."""
    h = resp.headers
    for kind in KINDS:
        value = h.get(f"x-account-sysmeta-{kind}")
        if value:
            h[f"X-Account-{kind}"] = value
        value = h.get(f"x-account-sysmeta-{kind}-policy-{POLICY_INDEX}")
        if value:
            h[f"X-Account-{kind}-Policy-{POLICY_NAME}"] = value


def _limit(sysmeta: dict[str, str], name: str, fallback: str | None = None) -> int | None:
    value = sysmeta.get(name, fallback)
    try:
        n = int(value) if value is not None else -1
    except ValueError:
        return None
    return n if n >= 0 else None


def has_quota(info: AccountInfo) -> bool:
    """Whether any quota of ``info`` is set (to a number or not)."""
    return "quota-bytes" in info.meta or any(k.startswith("quota-") for k in info.sysmeta)


def over_quota(info: AccountInfo, length: int) -> str | None:
    """Why a new object of ``length`` bytes would break a quota of ``info``."""
    sysmeta = info.sysmeta
    max_bytes = _limit(sysmeta, "quota-bytes", info.meta.get("quota-bytes"))
    if max_bytes is not None and max_bytes < info.bytes_used + length:
        return EXCEEDED
    max_count = _limit(sysmeta, "quota-count")
    if max_count is not None and max_count < info.object_count + 1:
        return EXCEEDED
    # the account's one policy holds all of its objects
    max_bytes = _limit(sysmeta, f"quota-bytes-policy-{POLICY_INDEX}")
    if max_bytes is not None and max_bytes < info.bytes_used + length:
        return POLICY_EXCEEDED
    max_count = _limit(sysmeta, f"quota-count-policy-{POLICY_INDEX}")
    if max_count is not None and max_count < info.object_count + 1:
        return POLICY_EXCEEDED
    return None


def _room(info: AccountInfo) -> tuple[int, str] | None:
    """The bytes an upload of unknown length may still bring, and the refusal."""
    sysmeta = info.sysmeta
    limits = [(n, EXCEEDED) for n in [_limit(sysmeta, "quota-bytes",
                                             info.meta.get("quota-bytes"))] if n is not None]
    policy = _limit(sysmeta, f"quota-bytes-policy-{POLICY_INDEX}")
    if policy is not None:
        limits.append((policy, POLICY_EXCEEDED))
    if not limits:
        return None
    limit, body = min(limits, key=lambda item: item[0])
    return limit - info.bytes_used, body


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("account_quotas")

    async def account(req: Request) -> Response:
        if req.method in ("PUT", "POST"):
            refused = _translate(req)
            if refused is not None:
                return refused
        resp = await app(req)
        _show_quotas(resp)
        return resp

    async def account_quotas(req: Request) -> Response:
        try:
            _, name, container, obj = req.split()
            length = req.content_length
        except HTTPError:
            return await app(req)  # the proxy answers a bad request
        if container is None:
            return await account(req)
        if (req.method != "PUT" or obj is None
                or req.environ.get("reseller_request") is True):
            return await app(req)
        # every upload passes here: sum the account's usage only when it has a quota
        if not has_quota(await st.listings.account_info(name, stats=False)):
            return await app(req)
        info = await st.listings.account_info(name)
        reason = over_quota(info, length or 0)
        if reason is not None:
            return await reject_writes(app, req, error(413, reason, method=req.method))
        room = _room(info) if length is None else None
        if room is not None:
            req.body = capped(req.stream(), *room)
        return await app(req)

    return account_quotas
