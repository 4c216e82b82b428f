"""The compute service's default policy: Nova's defaults for what exists.

Flavor management, extra spec changes and flavor access lists are admin-only;
any project reader sees extra specs; a user manages their own key pairs (an
admin anyone's); availability zones are listed by anyone, in detail by admins;
limits are read by anyone, another project's by admins; a project's members
create and act on its servers, its readers see them, admins see every
project's (``all_tenants``), the extended attributes and action events, and
reset states; offloading a shelved server (``shelveOffload``) and unshelving
to a named host are admin-only, as in Nova. A project's readers read its servers' metadata and tags and its
usage, its members change them; hypervisors, services and every project's
usage are for admins. A project's readers see its server groups and quotas, its
members create and delete groups; every project's groups (``all_projects``),
quota changes and quota classes are for admins; anyone reads the default quotas.

The rule strings are written out instead of going through Nova's named base
rules (``project_reader_or_admin`` ...): the enforcer is shared by every service,
so compute registers no generic names beyond ``context_is_admin``, which all
services define the same way.
"""

from __future__ import annotations

ADMIN = "rule:context_is_admin"
PROJECT_READER_OR_ADMIN = "rule:context_is_admin or (role:reader and project_id:%(project_id)s)"
OWNER_USER_OR_ADMIN = "(rule:context_is_admin) or user_id:%(user_id)s"
PROJECT_MEMBER_OR_ADMIN = "rule:context_is_admin or (role:member and project_id:%(project_id)s)"
ANY = "@"
S = "os_compute_api:servers:"

DEFAULTS: dict[str, str] = {
    "context_is_admin": "role:admin",
    "os_compute_api:os-flavor-manage:create": ADMIN,
    "os_compute_api:os-flavor-manage:update": ADMIN,
    "os_compute_api:os-flavor-manage:delete": ADMIN,
    "os_compute_api:os-flavor-extra-specs:index": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-flavor-extra-specs:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-flavor-extra-specs:create": ADMIN,
    "os_compute_api:os-flavor-extra-specs:update": ADMIN,
    "os_compute_api:os-flavor-extra-specs:delete": ADMIN,
    "os_compute_api:os-flavor-access": ADMIN,
    "os_compute_api:os-flavor-access:add_tenant_access": ADMIN,
    "os_compute_api:os-flavor-access:remove_tenant_access": ADMIN,
    "os_compute_api:os-keypairs:index": OWNER_USER_OR_ADMIN,
    "os_compute_api:os-keypairs:create": OWNER_USER_OR_ADMIN,
    "os_compute_api:os-keypairs:show": OWNER_USER_OR_ADMIN,
    "os_compute_api:os-keypairs:delete": OWNER_USER_OR_ADMIN,
    "os_compute_api:os-availability-zone:list": ANY,
    "os_compute_api:os-availability-zone:detail": ADMIN,
    "os_compute_api:limits": ANY,
    "os_compute_api:limits:other_project": ADMIN,
    S + "index": PROJECT_READER_OR_ADMIN,
    S + "detail": PROJECT_READER_OR_ADMIN,
    S + "index:get_all_tenants": ADMIN,
    S + "detail:get_all_tenants": ADMIN,
    S + "allow_all_filters": ADMIN,
    S + "show": PROJECT_READER_OR_ADMIN,
    S + "show:host_status": ADMIN,
    S + "create": PROJECT_MEMBER_OR_ADMIN,
    S + "create:attach_network": PROJECT_MEMBER_OR_ADMIN,
    S + "update": PROJECT_MEMBER_OR_ADMIN,
    S + "delete": PROJECT_MEMBER_OR_ADMIN,
    S + "start": PROJECT_MEMBER_OR_ADMIN,
    S + "stop": PROJECT_MEMBER_OR_ADMIN,
    S + "reboot": PROJECT_MEMBER_OR_ADMIN,
    S + "resize": PROJECT_MEMBER_OR_ADMIN,
    S + "confirm_resize": PROJECT_MEMBER_OR_ADMIN,
    S + "revert_resize": PROJECT_MEMBER_OR_ADMIN,
    S + "rebuild": PROJECT_MEMBER_OR_ADMIN,
    S + "rebuild:trusted_certs": PROJECT_MEMBER_OR_ADMIN,
    S + "create_image": PROJECT_MEMBER_OR_ADMIN,
    S + "create_image:allow_volume_backed": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-suspend-server:suspend": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-suspend-server:resume": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-rescue": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-unrescue": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-shelve:shelve": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-shelve:shelve_offload": ADMIN,
    "os_compute_api:os-shelve:unshelve": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-shelve:unshelve_to_host": ADMIN,
    "os_compute_api:os-deferred-delete:restore": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-deferred-delete:force": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-extended-server-attributes": ADMIN,
    "os_compute_api:os-pause-server:pause": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-pause-server:unpause": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:lock": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:unlock": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:unlock:unlock_override": ADMIN,
    "os_compute_api:os-admin-actions:reset_state": ADMIN,
    "os_compute_api:os-console-output": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-instance-actions:list": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-instance-actions:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-instance-actions:events": ADMIN,
    "os_compute_api:os-instance-actions:events:details": ADMIN,
    "os_compute_api:server-metadata:index": PROJECT_READER_OR_ADMIN,
    "os_compute_api:server-metadata:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:server-metadata:create": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:server-metadata:update": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:server-metadata:update_all": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:server-metadata:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:index": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-server-tags:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-server-tags:update": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:update_all": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-tags:delete_all": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-hypervisors:list": ADMIN,
    "os_compute_api:os-hypervisors:list-detail": ADMIN,
    "os_compute_api:os-hypervisors:show": ADMIN,
    "os_compute_api:os-hypervisors:statistics": ADMIN,
    "os_compute_api:os-services:list": ADMIN,
    "os_compute_api:os-services:update": ADMIN,
    "os_compute_api:os-simple-tenant-usage:list": ADMIN,
    "os_compute_api:os-simple-tenant-usage:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-server-groups:create": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-groups:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-groups:index": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-server-groups:index:all_projects": ADMIN,
    "os_compute_api:os-server-groups:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-quota-sets:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-quota-sets:detail": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-quota-sets:defaults": ANY,
    "os_compute_api:os-quota-sets:update": ADMIN,
    "os_compute_api:os-quota-sets:delete": ADMIN,
    "os_compute_api:os-quota-class-sets:show": ADMIN,
    "os_compute_api:os-quota-class-sets:update": ADMIN,
}
