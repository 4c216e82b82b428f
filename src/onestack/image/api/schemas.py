"""``/v2/schemas/*``: JSON Schemas of the image API's documents, which
glanceclient reads to tell base attributes from custom properties."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.core.errors import NotFound
from onestack.core.http import JSONResponse
from onestack.image.api.common import context, state
from onestack.image.api.metadefs_schemas import DOCS as METADEFS
from onestack.image.service.images import STATUSES, UUID_RE, VISIBILITIES
from onestack.image.state import ImageState

_UUID = UUID_RE.pattern
_STR = {"type": "string"}
_NSTR = {"type": ["null", "string"]}
_NINT = {"type": ["null", "integer"], "readOnly": True}
_TIME = {"type": "string", "readOnly": True}


def _ro(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "readOnly": True, "description": description}


def image_schema(st: ImageState) -> dict[str, Any]:
    props: dict[str, Any] = {
        "id": {"type": "string", "pattern": _UUID, "description": "An identifier for the image"},
        "name": {"type": ["null", "string"], "maxLength": 255,
                 "description": "Descriptive name for the image"},
        "status": _ro({"type": "string", "enum": list(STATUSES)}, "Status of the image"),
        "visibility": {"type": "string", "enum": list(VISIBILITIES),
                       "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, the image cannot be deleted"},
        "os_hidden": {"type": "boolean", "description": "If true, image lists omit the image"},
        "checksum": _ro({**_NSTR, "maxLength": 32}, "md5 of the image data"),
        "os_hash_algo": _ro({**_NSTR, "maxLength": 64}, "Algorithm of os_hash_value"),
        "os_hash_value": _ro({**_NSTR, "maxLength": 128}, "Secure hash of the image data"),
        "owner": {"type": ["null", "string"], "maxLength": 255,
                  "description": "Project that owns the image"},
        "size": {**_NINT, "description": "Size of the image data in bytes"},
        "virtual_size": {**_NINT, "description": "Virtual size of the disk in bytes"},
        "container_format": {"type": ["null", "string"],
                             "enum": [None, *st.conf.container_formats],
                             "description": "Format of the image container"},
        "disk_format": {"type": ["null", "string"], "enum": [None, *st.conf.disk_formats],
                        "description": "Format of the disk"},
        "created_at": {**_TIME, "description": "When the image was created"},
        "updated_at": {**_TIME, "description": "When the image was last changed"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255},
                 "description": "List of strings related to the image"},
        "direct_url": _ro(_STR, "URL of the image data in its store"),
        "min_ram": {"type": "integer", "minimum": 0,
                    "description": "RAM in MB needed to boot the image"},
        "min_disk": {"type": "integer", "minimum": 0,
                     "description": "Disk in GB needed to boot the image"},
        "self": _ro(_STR, "URL of this image"),
        "file": _ro(_STR, "URL of the image data"),
        "stores": _ro(_STR, "Stores holding the image data, comma separated"),
        "schema": _ro(_STR, "URL of this schema"),
        "locations": {"type": "array", "items": {"type": "object", "properties": {
            "url": {"type": "string", "maxLength": 255},
            "metadata": {"type": "object"},
        }, "required": ["url", "metadata"]}, "description": "Locations of the image data"},
        # well-known custom properties
        "kernel_id": {"type": ["null", "string"], "pattern": _UUID, "is_base": False,
                      "description": "Image of the kernel to boot an AMI-style image with"},
        "ramdisk_id": {"type": ["null", "string"], "pattern": _UUID, "is_base": False,
                       "description": "Image of the ramdisk to boot an AMI-style image with"},
        "architecture": {**_STR, "is_base": False, "description": "CPU architecture"},
        "os_distro": {**_STR, "is_base": False, "description": "Operating system distribution"},
        "os_version": {**_STR, "is_base": False, "description": "Operating system version"},
        "instance_uuid": {**_STR, "is_base": False,
                          "description": "Server this image was snapshotted from"},
    }
    return {
        "name": "image",
        "properties": props,
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def _collection(name: str, item: dict[str, Any], links: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": links,
    }


MEMBER: dict[str, Any] = {
    "name": "member",
    "properties": {
        "created_at": {"type": "string", "description": "When the member was added"},
        "updated_at": {"type": "string", "description": "When the member was last changed"},
        "image_id": {"type": "string", "pattern": _UUID, "description": "The shared image"},
        "member_id": {"type": "string", "description": "The project the image is shared with"},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"],
                   "description": "The member's answer"},
        "schema": {"type": "string", "readOnly": True},
    },
}

TASK: dict[str, Any] = {
    "name": "task",
    "properties": {
        "id": {"type": "string", "pattern": _UUID},
        "type": {"type": "string", "enum": ["import", "api_image_import"]},
        "status": {"type": "string", "enum": ["pending", "processing", "success", "failure"]},
        "input": {"type": ["null", "object"]},
        "result": {"type": ["null", "object"]},
        "owner": {"type": "string"},
        "message": {"type": "string"},
        "image_id": {"type": "string"},
        "request_id": {"type": "string"},
        "user_id": {"type": "string"},
        "expires_at": {"type": ["null", "string"]},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "self": {"type": "string"},
        "schema": {"type": "string"},
    },
}


def _docs(st: ImageState) -> dict[str, dict[str, Any]]:
    image = image_schema(st)
    return {
        "image": image,
        "images": _collection(
            "images", {k: v for k, v in image.items() if k != "links"} | {"type": "object"},
            [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
             {"rel": "describedby", "href": "{schema}"}],
        ),
        "member": MEMBER,
        "members": _collection("members", MEMBER, [{"rel": "describedby", "href": "{schema}"}]),
        "task": TASK,
        "tasks": _collection("tasks", TASK, [{"rel": "first", "href": "{first}"},
                                             {"rel": "next", "href": "{next}"},
                                             {"rel": "describedby", "href": "{schema}"}]),
        **METADEFS,
    }


async def show_schema(request: Request) -> Response:
    """``GET /v2/schemas/{name}`` for image, images, member, members, task, tasks
    and ``metadefs/*``."""
    await context(request)
    doc = _docs(state(request)).get(request.path_params["name"])
    if doc is None:
        raise NotFound(f"No schema named {request.path_params['name']}")
    return JSONResponse(doc)


routes = [Route("/v2/schemas/{name:path}", show_schema, methods=["GET"])]
