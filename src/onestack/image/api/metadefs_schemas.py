"""``/v2/schemas/metadefs/*``: JSON Schemas of the metadata definitions
documents, as glanceclient and Horizon read them (namespace, object, property,
tag, resource type association, and a collection of each)."""

from __future__ import annotations

import copy
from typing import Any

from onestack.image.service.metadefs import PROPERTY_TYPES

_TYPES: list[Any] = [*PROPERTY_TYPES, None]


def _time(what: str) -> dict[str, Any]:
    return {"type": "string", "readOnly": True, "format": "date-time", "description": what}


_RO_STR = {"type": "string", "readOnly": True}

DEFINITIONS: dict[str, Any] = {
    "positiveInteger": {"type": "integer", "minimum": 0},
    "positiveIntegerDefault0": {"allOf": [{"$ref": "#/definitions/positiveInteger"},
                                          {"default": 0}]},
    "stringArray": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    "property": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "required": ["title", "type"],
            "properties": {
                "name": {"type": "string", "maxLength": 80},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "operators": {"type": "array", "items": {"type": "string"}},
                "type": {"type": "string", "enum": _TYPES},
                "required": {"$ref": "#/definitions/stringArray"},
                "minimum": {"type": "number"},
                "maximum": {"type": "number"},
                "maxLength": {"$ref": "#/definitions/positiveInteger"},
                "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
                "pattern": {"type": "string", "format": "regex"},
                "enum": {"type": "array"},
                "readonly": {"type": "boolean"},
                "default": {},
                "items": {"type": "object", "properties": {
                    "type": {"type": "string", "enum": _TYPES},
                    "enum": {"type": "array"},
                }},
                "maxItems": {"$ref": "#/definitions/positiveInteger"},
                "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
                "uniqueItems": {"type": "boolean", "default": False},
                "additionalItems": {"type": "boolean"},
            },
        },
    },
}

_ASSOCIATION_PROPS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 80,
             "description": "Name of the resource type, ideally a Heat resource type name"},
    "prefix": {"type": "string", "maxLength": 80,
               "description": "Prefix of the namespace's property names on this resource type, "
                              "separator included (hw_ or hw: for instance)"},
    "properties_target": {"type": "string", "maxLength": 80,
                          "description": "Which set of key/value pairs of the resource the "
                                         "properties go to, when it has several (a volume's "
                                         "image metadata, for instance)"},
    "created_at": _time("When the association was made"),
    "updated_at": _time("When the association last changed"),
}

NAMESPACE: dict[str, Any] = {
    "name": "namespace",
    "properties": {
        "namespace": {"type": "string", "maxLength": 80,
                      "description": "Unique name of the namespace"},
        "display_name": {"type": "string", "maxLength": 80,
                         "description": "Name for people to read, shown by user interfaces"},
        "description": {"type": "string", "maxLength": 500,
                        "description": "What the namespace is for"},
        "visibility": {"type": "string", "enum": ["public", "private"],
                       "description": "Who may see the namespace"},
        "protected": {"type": "boolean",
                      "description": "If true, the namespace and its contents cannot be deleted"},
        "owner": {"type": "string", "maxLength": 255, "description": "Project owning the namespace"},
        "created_at": _time("When the namespace was created"),
        "updated_at": _time("When the namespace last changed"),
        "schema": _RO_STR,
        "self": _RO_STR,
        "resource_type_associations": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "properties_target": {"type": "string"},
        }}},
        "properties": {"$ref": "#/definitions/property"},
        "objects": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "required": {"$ref": "#/definitions/stringArray"},
            "properties": {"$ref": "#/definitions/property"},
        }}},
        "tags": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"},
        }}},
    },
    "additionalProperties": False,
    "definitions": DEFINITIONS,
    "required": ["namespace"],
}

OBJECT: dict[str, Any] = {
    "name": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 80},
        "description": {"type": "string"},
        "required": {"$ref": "#/definitions/stringArray"},
        "properties": {"$ref": "#/definitions/property"},
        "schema": _RO_STR,
        "self": _RO_STR,
        "created_at": _time("When the object was created"),
        "updated_at": _time("When the object last changed"),
    },
    "additionalProperties": False,
    "definitions": DEFINITIONS,
    "required": ["name"],
}

PROPERTY: dict[str, Any] = {
    "name": "property",
    "properties": copy.deepcopy(DEFINITIONS["property"]["additionalProperties"]["properties"]),
    "additionalProperties": False,
    "definitions": {
        "positiveInteger": DEFINITIONS["positiveInteger"],
        "positiveIntegerDefault0": DEFINITIONS["positiveIntegerDefault0"],
        "stringArray": {**DEFINITIONS["stringArray"], "minItems": 1},
    },
    "required": ["type", "title", "name"],
}

TAG: dict[str, Any] = {
    "name": "tag",
    "properties": {
        "name": {"type": "string", "maxLength": 80},
        "created_at": _time("When the tag was created"),
        "updated_at": _time("When the tag last changed"),
    },
    "additionalProperties": False,
    "required": ["name"],
}

RESOURCE_TYPE_ASSOCIATION: dict[str, Any] = {
    "name": "resource_type_association",
    "properties": _ASSOCIATION_PROPS,
    "additionalProperties": False,
    "required": ["name"],
}

_LINKS = [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
          {"rel": "describedby", "href": "{schema}"}]


def _collection(name: str, item: dict[str, Any], *, keyed: bool = False) -> dict[str, Any]:
    """The schema of a list of ``item`` (or of a dict of them keyed by name),
    with the item's definitions moved to the top, where ``$ref`` finds them."""
    item = {k: v for k, v in item.items() if k != "definitions"}
    if keyed:
        item["required"] = [r for r in item.get("required", []) if r != "name"]
        inner: dict[str, Any] = {"type": "object", "additionalProperties": item}
    else:
        inner = {"type": "array", "items": item}
    doc: dict[str, Any] = {
        "name": name,
        "properties": {
            name: inner,
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": _LINKS,
    }
    source = {"namespaces": NAMESPACE, "objects": OBJECT, "properties": PROPERTY}.get(name)
    if source is not None:
        doc["definitions"] = source["definitions"]
    return doc


DOCS: dict[str, dict[str, Any]] = {
    "metadefs/namespace": NAMESPACE,
    "metadefs/namespaces": _collection("namespaces", NAMESPACE),
    "metadefs/object": OBJECT,
    "metadefs/objects": _collection("objects", OBJECT),
    "metadefs/property": PROPERTY,
    "metadefs/properties": _collection("properties", PROPERTY, keyed=True),
    "metadefs/tag": TAG,
    "metadefs/tags": _collection("tags", TAG),
    "metadefs/resource_type": RESOURCE_TYPE_ASSOCIATION,
    "metadefs/resource_types": _collection("resource_type_associations", RESOURCE_TYPE_ASSOCIATION),
}
"""The metadefs schema documents by their path under ``/v2/schemas/``."""
