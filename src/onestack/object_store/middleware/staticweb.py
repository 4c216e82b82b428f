"""Static web sites served from a container (Swift's ``staticweb``).

For anonymous GET and HEAD requests (and for authenticated ones that send
``X-Web-Mode: true``), a container's metadata turns it into a web site:

- ``Web-Index: index.html``: ``/c/`` and ``/c/dir/`` answer with that object
  below them; ``/c`` and ``/c/dir`` are redirected (301) to the slashed path, so
  that relative links in the page resolve below it;
- ``Web-Listings: true``: a directory without an index answers with an HTML
  listing (``Web-Listings-CSS`` links a style sheet, ``Web-Listings-Label``
  replaces the account path in the title). Listings need read access to the
  container itself: ``X-Container-Read: .r:*,.rlistings``;
- ``Web-Error: error.html``: a 404 (or the 401 of a container the caller may
  not read) answers with the body of ``404error.html`` (``401error.html``);
- ``Web-Directory-Type`` (``application/directory`` by default): empty objects
  of that type are directory markers and read as missing, so the directory's
  index or listing answers instead.

Everything is fetched with ordinary sub-requests below this layer, which the
proxy authorizes as the caller: a page is served only if the caller could have
read it directly.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

from onestack.object_store.api.common import ACL, config_true
from onestack.object_store.http import Handler, Headers, HTTPError, Request, Response, error
from onestack.object_store.state import ObjectStoreState

SOURCE = "SW"
DIRECTORY_TYPE = "application/directory"
TEMPURL_USER = ".wsgi.tempurl"
HTML_TYPE = "text/html; charset=UTF-8"
_DEFAULT_STYLE = (
    "h1 {font-size: 1em; font-weight: bold;}",
    "th {text-align: left; padding: 0px 1em 0px 1em;}",
    "td {padding: 0px 1em 0px 1em;}",
    "a {text-decoration: none;}",
)
_MOVED = "<html><h1>Moved Permanently</h1><p>The resource has moved permanently.</p></html>"


def _ok(status: int) -> bool:
    """Success or redirection: Swift serves either as found."""
    return 200 <= status < 400


def human_size(size: int) -> str:
    """A size as Swift's listings print it: ``512``, ``3Ki``, ``20Mi`` (rounded
    to whole units at every step, as Swift's ``human_readable``)."""
    units = "KMGTPEZY"
    value, step = float(size), -1
    while value >= 1024 and step + 1 < len(units):
        value = round(value / 1024)
        step += 1
    return f"{int(value)}" if step < 0 else f"{round(value)}{units[step]}i"


def _href(name: str) -> str:
    # dots are escaped too, so that a name such as ".." cannot climb out
    return quote(name).replace(".", "%2E")


class Site:
    """One request to a container's web site and the container's web settings."""

    def __init__(self, app: Handler, st: ObjectStoreState, req: Request,
                 parts: tuple[str, str, str, str | None]) -> None:
        self.app, self.st, self.req = app, st, req
        self.version, self.account, self.container, self.obj = parts
        self.index = self.error_suffix = self.listings = self.label = ""
        self.css = self.dir_type = ""
        self.read_acl: str | None = None

    @property
    def container_path(self) -> str:
        return f"/{self.version}/{self.account}/{self.container}"

    async def load(self) -> None:
        info = await self.st.listings.container_info(self.account, self.container,
                                                    counts=False)
        if info is None:
            return
        meta = info.meta
        self.index = meta.get("web-index", "").strip()
        self.error_suffix = meta.get("web-error", "").strip()
        self.listings = meta.get("web-listings", "").strip()
        self.label = meta.get("web-listings-label", "").strip()
        self.css = meta.get("web-listings-css", "").strip()
        self.dir_type = meta.get("web-directory-type", "").strip()
        self.read_acl = info.read_acl

    async def fetch(self, path: str, *, method: str | None = None,
                    query: dict[str, str] | None = None, own_headers: bool = True) -> Response:
        """A sub-request below this layer, as the caller (the proxy authorizes it)."""
        req = self.req
        headers = req.headers.copy() if own_headers else Headers()
        if own_headers:
            headers["User-Agent"] = f"{req.headers.get('user-agent')} StaticWeb"
        sub = req.sub(method or req.method, path, headers=headers,
                      query=req.query if query is None else query, source=SOURCE)
        try:
            return await self.app(sub)
        except HTTPError as exc:
            return exc.response

    # -- answers -----------------------------------------------------------------------

    async def error_page(self, resp: Response) -> Response:
        """``resp``, or with ``Web-Error`` set the body of ``<status><suffix>`` under
        ``resp``'s status (when that page can be read)."""
        if not self.error_suffix:
            return resp
        page = await self.fetch(f"{self.container_path}/{resp.status}{self.error_suffix}",
                                method="GET", query={}, own_headers=False)
        if not page.ok:
            await page.close()
            return resp
        await resp.close()
        page.status = resp.status
        return page

    def redirect_with_slash(self) -> Response:
        req = self.req
        location = f"{req.scheme}://{req.host}{req.script_name}{quote(req.path)}/"
        return error(301, _MOVED, {"Location": location, "Content-Type": HTML_TYPE},
                     method=req.method)

    async def serve_container(self) -> Response:
        """``/c`` or ``/c/``: index, listing or redirect, once the caller may read."""
        req = self.req
        await self.load()
        req.environ[ACL] = self.read_acl
        denial = await req.environ["swift.authorize"](req)
        if denial is not None:
            return await self.error_page(denial)
        if not self.listings and not self.index:
            if config_true(req.headers.get("x-web-mode", "f")):
                return error(404, method=req.method)
            return await self.app(req)
        if not req.path.endswith("/"):
            return self.redirect_with_slash()
        if not self.index:
            return await self.listing()
        resp = await self.fetch(req.path + self.index)
        if resp.status == 404:
            await resp.close()
            return await self.listing()
        if not _ok(resp.status):
            return await self.error_page(resp)
        return resp

    async def serve_object(self) -> Response:
        """``/c/name``: the object itself unless missing (or a directory marker),
        then the index below it, a redirect to ``name/`` or a listing."""
        req = self.req
        assert self.obj is not None
        resp = await self.fetch(req.path)
        await self.load()
        if _ok(resp.status) and not self._directory_marker(resp):
            return resp
        if not _ok(resp.status) and resp.status != 404:
            return resp  # Swift serves its error pages for a missing page only
        if not self.listings and not self.index:
            return resp  # a directory marker too: there is nothing else to show
        await resp.close()
        if self.index:
            base = req.path if req.path.endswith("/") else req.path + "/"
            resp = await self.fetch(base + self.index)
            if _ok(resp.status):
                if not req.path.endswith("/"):
                    await resp.close()
                    return self.redirect_with_slash()
                return resp
            if resp.status != 404:
                return await self.error_page(resp)
            await resp.close()
        if req.path.endswith("/"):
            return await self.listing(self.obj)
        if await self._is_directory():
            return self.redirect_with_slash()
        return await self.error_page(error(404, method=req.method))

    def _directory_marker(self, resp: Response) -> bool:
        length = resp.headers.get("content-length") or "0"
        try:
            size = int(length)
        except ValueError:
            return False
        return resp.headers.get("content-type") == (self.dir_type or DIRECTORY_TYPE) \
            and size <= 1

    async def _is_directory(self) -> bool:
        """Whether some object's name starts with ``<obj>/``."""
        resp = await self.fetch(self.container_path, method="GET", own_headers=False, query={
            "format": "json", "limit": "1", "delimiter": "/", "prefix": f"{self.obj}/"})
        body = await resp.read()
        return resp.ok and bool(body) and bool(json.loads(body))

    # -- listings ------------------------------------------------------------------------

    async def listing(self, prefix: str = "") -> Response:
        req = self.req
        label = req.path
        if self.label:
            label = f"{self.label}/" + "/".join(req.path.split("/")[4:])
        if not config_true(self.listings):
            return await self.error_page(self._disabled_page(label, prefix))
        query = {"format": "json", "delimiter": "/"}
        if prefix:
            query["prefix"] = prefix
        resp = await self.fetch(self.container_path, method="GET", query=query,
                                own_headers=False)
        if not resp.ok:
            return await self.error_page(resp)
        body = await resp.read()
        entries: list[dict[str, Any]] = json.loads(body) if body else []
        if prefix and not entries:
            return await self.error_page(error(404, method=req.method))
        page = self._listing_page(label, prefix, entries).encode()
        return Response(200, Headers({"Content-Type": HTML_TYPE,
                                      "Content-Length": str(len(page))}), page)

    def _css_href(self, prefix: str) -> str:
        if self.css.startswith(("/", "http://", "https://")):
            return quote(self.css, safe=":/")
        return "../" * prefix.count("/") + quote(self.css)

    def _head(self, label: str, prefix: str) -> list[str]:
        lines = ["<!DOCTYPE html>", "<html>", " <head>",
                 f"  <title>Listing of {html.escape(label)}</title>"]
        if self.css:
            lines.append(f'  <link rel="stylesheet" type="text/css" '
                         f'href="{self._css_href(prefix)}" />')
        else:
            lines += ['  <style type="text/css">', *(f"   {r}" for r in _DEFAULT_STYLE),
                      "  </style>"]
        lines.append(" </head>")
        return lines

    def _disabled_page(self, label: str, prefix: str) -> Response:
        lines = self._head(label, prefix)
        lines += [" <body>", "  <h1>Web Listing Disabled</h1>",
                  "  <p>This site does not list its files.</p>",
                  ("  <p>Its owner can list them with "
                   "<b>X-Container-Meta-Web-Listings: true</b>.</p>")]
        if self.index:
            lines += ["  <h1>Index File Not Found</h1>",
                      (f"  <p>No <b>{html.escape(self.index)}</b> here, the index file "
                       "named by X-Container-Meta-Web-Index.</p>")]
        lines += [" </body>", "</html>", ""]
        page = "\n".join(lines)
        return error(404, page, {"Content-Type": HTML_TYPE}, method=self.req.method)

    def _listing_page(self, label: str, prefix: str, entries: list[dict[str, Any]]) -> str:
        suffix, top = self._tempurl_query()
        rows = ['  <table id="listing">', '   <tr id="heading">',
                '    <th class="colname">Name</th>', '    <th class="colsize">Size</th>',
                '    <th class="coldate">Date</th>', "   </tr>"]
        if len(prefix) > len(top):
            rows += _row('id="parent" class="item"', f"../{suffix}", "../")
        for entry in entries:
            if "subdir" in entry:
                name = entry["subdir"][len(prefix):]
                rows += _row('class="item subdir"', _href(name) + suffix, name, prefix="./")
        for entry in entries:
            if "name" in entry:
                name = entry["name"][len(prefix):]
                kinds = " ".join("type-" + html.escape(t.lower())
                                 for t in entry["content_type"].split("/"))
                date = html.escape(entry["last_modified"]).split(".")[0].replace("T", " ")
                rows += _row(f'class="item {kinds}"', _href(name) + suffix, name, prefix="./",
                             size=human_size(entry["bytes"]), date=date)
        rows.append("  </table>")
        lines = [*self._head(label, prefix), " <body>",
                 f'  <h1 id="title">Listing of {html.escape(label)}</h1>', *rows,
                 " </body>", "</html>", ""]
        return "\n".join(lines)

    def _tempurl_query(self) -> tuple[str, str]:
        """The TempURL parameters links must carry to stay usable (a prefix-scoped
        TempURL lists its directory), and the prefix it grants."""
        req = self.req
        if req.environ.get("REMOTE_USER") != TEMPURL_USER:
            return "", ""
        top = req.query.get("temp_url_prefix")
        if top is None:
            return "", ""
        parts = [f"temp_url_prefix={quote(top)}",
                 f"temp_url_expires={quote(req.query.get('temp_url_expires', ''))}",
                 f"temp_url_sig={req.query.get('temp_url_sig', '')}"]
        if req.query.get("temp_url_ip_range"):
            parts.append(f"temp_url_ip_range={quote(req.query['temp_url_ip_range'])}")
        if "inline" in req.query:
            parts.append("inline")
        return "?" + "&amp;".join(parts), top


def _row(attrs: str, href: str, text: str, *, prefix: str = "", size: str = "&nbsp;",
         date: str = "&nbsp;") -> list[str]:
    return [f"   <tr {attrs}>",
            f'    <td class="colname"><a href="{prefix}{href}">{html.escape(text)}</a></td>',
            f'    <td class="colsize">{size}</td>',
            f'    <td class="coldate">{date}</td>',
            "   </tr>"]


def _wants_site(req: Request) -> bool:
    """Anonymous callers (and TempURL holders) get web sites; others ask with
    ``X-Web-Mode: true``."""
    user = req.environ.get("REMOTE_USER")
    return not user or user == TEMPURL_USER or config_true(req.headers.get("x-web-mode", "f"))


def middleware(app: Handler, st: ObjectStoreState) -> Handler:
    st.register("staticweb")

    async def staticweb(req: Request) -> Response:
        if ("swift.authorize" not in req.environ or "swift.source" in req.environ
                or req.method not in ("GET", "HEAD") or not _wants_site(req)):
            return await app(req)
        try:
            version, account, container, obj = req.split()
        except HTTPError:
            return await app(req)
        if container is None:
            return await app(req)
        site = Site(app, st, req, (version, account, container, obj))
        if obj is None:
            return await site.serve_container()
        return await site.serve_object()

    return staticweb
