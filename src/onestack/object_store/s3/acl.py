"""ACLs: canned S3 ACLs over Swift container ACLs, as Swift's s3api maps them.

``private`` clears the container's read and write ACLs, ``public-read`` is
``X-Container-Read: .r:*,.rlistings``. Swift cannot let anonymous callers
write (a referrer in a write ACL is refused), so ``public-read-write`` lets
every authenticated user write (``X-Container-Write: *:*``) and is shown as a
WRITE grant to AuthenticatedUsers; ``authenticated-read`` is ``X-Container-Read:
*:*``. Swift has no per-object ACL: an object's ACL is its bucket's, and
PutObjectAcl accepts only the ACL the bucket already has. Grants are shown as
S3 shows them: the owner's FULL_CONTROL, then the groups.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from onestack.object_store.http import Headers, Response
from onestack.object_store.s3.context import S3Context, empty_response, owner_element, xml_response
from onestack.object_store.s3.errors import S3Error, invalid_argument, not_implemented
from onestack.object_store.s3.xmlutil import XSI_NS, XMLError, parse, text

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
MAX_ACL_BODY = 200 * 1024
PUBLIC_READ = ".r:*,.rlistings"
ANY_USER = "*:*"  # keystoneauth: any user of any project
CANNED: dict[str, dict[str, str]] = {
    "private": {"X-Container-Read": "", "X-Container-Write": ""},
    "public-read": {"X-Container-Read": PUBLIC_READ, "X-Container-Write": ""},
    "public-read-write": {"X-Container-Read": PUBLIC_READ, "X-Container-Write": ANY_USER},
    "authenticated-read": {"X-Container-Read": ANY_USER, "X-Container-Write": ""},
}
# Swift has no way to say these; S3 clients use them for objects in their own buckets
CANNED["bucket-owner-full-control"] = CANNED["bucket-owner-read"] = CANNED["private"]


def translate(canned: str) -> dict[str, str]:
    """The container ACL headers of a canned ACL."""
    if canned in ("log-delivery-write", "aws-exec-read"):
        raise not_implemented(f"The canned ACL {canned} is not supported.")
    if canned not in CANNED:
        raise invalid_argument("x-amz-acl", canned)
    return dict(CANNED[canned])


def canned_headers(canned: str | None) -> dict[str, str]:
    """ACL headers for a new bucket: only those that grant something."""
    if canned is None:
        return {}
    return {k: v for k, v in translate(canned).items() if v}


def canned_of(read_acl: str, write_acl: str) -> str:
    """The canned ACL that a container's ACLs amount to (other grants, made
    through the Swift API, have no S3 name and are not shown)."""
    readers = {i.strip() for i in read_acl.split(",")}
    writers = {i.strip() for i in write_acl.split(",")}
    if ".r:*" in readers:
        return "public-read-write" if ANY_USER in writers else "public-read"
    if ANY_USER in readers:
        return "authenticated-read"
    return "private"


def acl_from_xml(body: bytes) -> str:
    """The canned ACL an ``AccessControlPolicy`` document amounts to.

    Raises:
        S3Error: ``MalformedACLError``, or ``NotImplemented`` for grants Swift
            cannot express (to other users, to authenticated users).
    """
    try:
        root = parse(body, "AccessControlPolicy")
    except XMLError:
        raise S3Error("MalformedACLError") from None
    grants = set()
    for grant in root.iter("Grant"):
        permission = text(grant, "Permission")
        grantee = grant.find("Grantee")
        if grantee is None or permission is None:
            raise S3Error("MalformedACLError")
        kind = grantee.get(f"{{{XSI_NS}}}type") or grantee.get("type")
        if kind == "CanonicalUser" and permission == "FULL_CONTROL":
            continue
        grants.add((kind, text(grantee, "URI"), permission))
    for canned in ("private", "public-read", "public-read-write", "authenticated-read"):
        if grants == _group_grants(canned):
            return canned
    raise not_implemented("Only the grants of the canned ACLs private, public-read, "
                          "public-read-write and authenticated-read can be given.")


def _group_grants(canned: str) -> set[tuple[str, str, str]]:
    """The group grants that show a canned ACL."""
    return {
        "private": set(),
        "public-read": {("Group", ALL_USERS, "READ")},
        "public-read-write": {("Group", ALL_USERS, "READ"),
                              ("Group", AUTHENTICATED_USERS, "WRITE")},
        "authenticated-read": {("Group", AUTHENTICATED_USERS, "READ")},
    }[canned]


async def requested(ctx: S3Context) -> str:
    """The canned ACL a Put*Acl asks for (header or document, not both)."""
    assert ctx.payload is not None
    if ctx.req.headers.with_prefix("x-amz-grant-"):
        raise not_implemented("x-amz-grant-* headers are not supported.")
    body = await ctx.payload.read(MAX_ACL_BODY)
    header = ctx.req.headers.get("x-amz-acl")
    if header is not None and body.strip():
        raise S3Error("UnexpectedContent")
    if header is not None:
        translate(header)
        return header
    if not body.strip():
        raise S3Error("MissingSecurityHeader", MissingHeaderName="x-amz-acl")
    return acl_from_xml(body)


def policy(ctx: S3Context, read_acl: str, write_acl: str) -> Response:
    root = Element("AccessControlPolicy")
    owner_element(root, "Owner", ctx)
    grants = SubElement(root, "AccessControlList")
    _grant(grants, "CanonicalUser", "FULL_CONTROL", ctx.owner)
    for _, uri, permission in sorted(_group_grants(canned_of(read_acl, write_acl)),
                                     key=lambda g: (g[2] != "READ", g[1])):
        _grant(grants, "Group", permission, uri)
    return xml_response(root)


def _grant(parent: Element, kind: str, permission: str, who: str) -> None:
    grant = SubElement(parent, "Grant")
    grantee = SubElement(grant, "Grantee", {"xmlns:xsi": XSI_NS, "xsi:type": kind})
    if kind == "CanonicalUser":
        SubElement(grantee, "ID").text = who
        SubElement(grantee, "DisplayName").text = who
    else:
        SubElement(grantee, "URI").text = who
    SubElement(grant, "Permission").text = permission


async def bucket_acls(ctx: S3Context) -> tuple[str, str]:
    head = await ctx.require_bucket()
    return _acls(head.headers)


def _acls(headers: Headers) -> tuple[str, str]:
    return (headers.get("x-container-read") or "", headers.get("x-container-write") or "")


async def get_acl(ctx: S3Context) -> Response:
    assert ctx.bucket is not None
    if ctx.key is not None:
        query = {"version-id": v} if (v := ctx.param("versionId")) else None
        resp = await ctx.call("HEAD", ctx.bucket, ctx.key, query=query)
        await resp.close()
    return policy(ctx, *await bucket_acls(ctx))


async def put_acl(ctx: S3Context) -> Response:
    assert ctx.bucket is not None
    canned = await requested(ctx)
    if ctx.key is not None:
        resp = await ctx.call("HEAD", ctx.bucket, ctx.key)
        await resp.close()
        current = canned_of(*await bucket_acls(ctx))
        if CANNED[canned] != CANNED[current]:
            raise not_implemented("Objects have their bucket's ACL: set the bucket's ACL "
                                  "instead.")
        return empty_response(200)
    resp = await ctx.call("POST", ctx.bucket, headers=translate(canned))
    await resp.close()
    return empty_response(200, {"Location": ctx.bucket})


OPERATIONS = {"GET": get_acl, "PUT": put_acl}
