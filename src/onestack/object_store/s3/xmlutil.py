"""Reading and writing S3's XML.

Documents S3 answers carry its namespace on the root; error documents carry
none. Documents clients send may or may not use the namespace, so parsing drops
it. Client XML never needs a DTD: one is refused outright, which keeps entity
expansion tricks away from the parser.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError, XMLParser, tostring

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class XMLError(ValueError):
    """The document is not well-formed, uses a DTD, or has the wrong root."""


def render(root: Element, *, namespace: bool = True) -> bytes:
    """``root`` as a UTF-8 document with the XML declaration."""
    if namespace:
        root.set("xmlns", S3_NS)
    return _DECLARATION + tostring(root, encoding="unicode").encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes, root_name: str) -> Element:
    """The document in ``body``, with namespaces stripped from every tag.

    Raises:
        XMLError: not well-formed, a DTD, or a root other than ``root_name``.
    """
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise XMLError("DTDs are not accepted")
    parser = XMLParser()
    try:
        parser.feed(body)
        root = parser.close()
    except ParseError as exc:
        raise XMLError(str(exc)) from None
    for elem in root.iter():
        if isinstance(elem.tag, str):
            elem.tag = _local(elem.tag)
        for name in [k for k in elem.attrib if k.startswith("{") and not k.startswith("{" + XSI_NS)]:
            elem.attrib[_local(name)] = elem.attrib.pop(name)
    if root.tag != root_name:
        raise XMLError(f"expected {root_name}, got {root.tag}")
    return root


def text(parent: Element, name: str) -> str | None:
    """The text of ``parent``'s child ``name`` ("" when empty), ``None`` if absent."""
    child = parent.find(name)
    if child is None:
        return None
    return child.text or ""
