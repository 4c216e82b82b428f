"""The image service's default policy (Glance's secure-RBAC defaults in spirit):
readers of a project see its images, members change them, admins do anything.
Which images a caller can *see* (public, community, shared with an accepted
membership) is decided by the service's visibility rules, not here; the target
of an image rule carries ``project_id`` = the image's owner and ``member_id`` =
the caller's project when it is a member of the image."""

from __future__ import annotations

ADMIN = "role:admin"
OWNER_MEMBER = "role:admin or (role:member and project_id:%(project_id)s)"
OWNER_READER = "role:admin or (role:reader and project_id:%(project_id)s)"
SEES_IMAGE = (
    "role:admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s"
    " or 'community':%(visibility)s or 'public':%(visibility)s))"
)
# Metadata definitions: readers see public namespaces and their own project's;
# only admins write (Glance's defaults). The target is the namespace's owner and
# visibility, or the caller's project for rules about no namespace in particular.
METADEF_READ = "role:admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))"
METADEF_LIST = "role:admin or (role:reader and project_id:%(project_id)s)"

DEFAULTS: dict[str, str] = {
    "context_is_admin": ADMIN,
    "image:add_image": OWNER_MEMBER,
    "image:get_image": SEES_IMAGE,
    "image:get_images": "role:admin or role:reader",
    "image:modify_image": OWNER_MEMBER,
    "image:delete_image": OWNER_MEMBER,
    "image:publicize_image": ADMIN,
    "image:communitize_image": OWNER_MEMBER,
    "image:download_image": SEES_IMAGE,
    "image:upload_image": OWNER_MEMBER,
    "image:deactivate": OWNER_MEMBER,
    "image:reactivate": OWNER_MEMBER,
    "image:copy_image": ADMIN,
    "image:import_image": OWNER_MEMBER,
    "image:delete_image_location": ADMIN,
    "image:get_image_location": OWNER_READER,
    "image:set_image_location": OWNER_MEMBER,
    "image:add_member": OWNER_MEMBER,
    "image:delete_member": OWNER_MEMBER,
    "image:get_member": "role:admin or (role:reader and (project_id:%(project_id)s"
    " or project_id:%(member_id)s))",
    "image:get_members": "role:admin or (role:reader and (project_id:%(project_id)s"
    " or project_id:%(member_id)s))",
    "image:modify_member": "role:admin or (role:member and project_id:%(member_id)s)",
    "image:get_task": ADMIN,
    "image:get_tasks": ADMIN,
    "image:add_task": ADMIN,
    "image:tasks_api_access": ADMIN,
    "image:stores_info_detail": ADMIN,
    "image:get_usage": "role:reader",
    "image:get_metadef_namespace": METADEF_READ,
    "image:get_metadef_namespaces": METADEF_LIST,
    "image:add_metadef_namespace": ADMIN,
    "image:modify_metadef_namespace": ADMIN,
    "image:delete_metadef_namespace": ADMIN,
    "image:get_metadef_object": METADEF_READ,
    "image:get_metadef_objects": METADEF_READ,
    "image:add_metadef_object": ADMIN,
    "image:modify_metadef_object": ADMIN,
    "image:delete_metadef_object": ADMIN,
    "image:list_metadef_resource_types": METADEF_READ,
    "image:get_metadef_resource_type": METADEF_READ,
    "image:add_metadef_resource_type_association": ADMIN,
    "image:remove_metadef_resource_type_association": ADMIN,
    "image:get_metadef_property": METADEF_READ,
    "image:get_metadef_properties": METADEF_READ,
    "image:add_metadef_property": ADMIN,
    "image:modify_metadef_property": ADMIN,
    "image:remove_metadef_property": ADMIN,
    "image:get_metadef_tag": METADEF_READ,
    "image:get_metadef_tags": METADEF_READ,
    "image:add_metadef_tag": ADMIN,
    "image:add_metadef_tags": ADMIN,
    "image:modify_metadef_tag": ADMIN,
    "image:delete_metadef_tag": ADMIN,
    "image:delete_metadef_tags": ADMIN,
}
