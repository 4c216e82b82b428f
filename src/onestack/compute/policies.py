"""The compute service's default policy: Nova's defaults for what exists.

Flavor management, extra spec changes and flavor access lists are admin-only;
any project reader sees extra specs; a user manages their own key pairs (an
admin anyone's); availability zones are listed by anyone, in detail by admins;
limits are read by anyone, another project's by admins; a project's members
create and act on its servers, its readers see them, admins see every
project's (``all_tenants``), the extended attributes and action events, and
reset states; offloading a shelved server (``shelveOffload``) and unshelving
to a named host are admin-only, as in Nova; a project's members get its
servers' remote consoles, console auth tokens are shown to admins. A project's readers read its servers' metadata and tags and its
usage, its members change them; hypervisors, services and every project's
usage are for admins. A project's readers see its server groups and quotas, its
members create and delete groups; every project's groups (``all_projects``),
quota changes and quota classes are for admins; anyone reads the default quotas.
A project's managers list its migrations (and its servers' in-progress live
migrations); every project's, with the hosts, are for admins.

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
# Nova's project manager persona (2025.1): Keystone's "manager" role, implied by admin
PROJECT_MANAGER_OR_ADMIN = (
    "rule:context_is_admin or (role:manager and project_id:%(project_id)s)")
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
    S + "show:host_status:unknown-only": ADMIN,
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
    "os_compute_api:os-create-backup": PROJECT_MEMBER_OR_ADMIN,
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
    "os_compute_api:os-attach-interfaces:list": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-attach-interfaces:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-attach-interfaces:create": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-attach-interfaces:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:lock": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:unlock": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-lock-server:unlock:unlock_override": ADMIN,
    "os_compute_api:os-admin-actions:reset_state": ADMIN,
    "os_compute_api:os-console-output": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-remote-consoles": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-console-auth-tokens": ADMIN,
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
    # the deprecated network proxies (api/net_proxies.py)
    "os_compute_api:os-security-groups:get": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-security-groups:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-security-groups:create": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-security-groups:update": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-security-groups:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-security-groups:rule:create": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-security-groups:rule:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-security-groups:list": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-security-groups:add": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-security-groups:remove": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-floating-ips:list": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-floating-ips:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-floating-ips:create": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-floating-ips:delete": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-floating-ips:add": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-floating-ips:remove": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-floating-ip-pools": ANY,
    "os_compute_api:os-networks:list": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-networks:view": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-tenant-networks:list": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-tenant-networks:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-aggregates:index": ADMIN,
    "os_compute_api:os-aggregates:create": ADMIN,
    "os_compute_api:os-aggregates:show": ADMIN,
    "os_compute_api:os-aggregates:update": ADMIN,
    "os_compute_api:os-aggregates:delete": ADMIN,
    "os_compute_api:os-aggregates:add_host": ADMIN,
    "os_compute_api:os-aggregates:remove_host": ADMIN,
    "os_compute_api:os-aggregates:set_metadata": ADMIN,
    "os_compute_api:os-hypervisors:uptime": ADMIN,
    "os_compute_api:os-hypervisors:search": ADMIN,
    "os_compute_api:os-hypervisors:servers": ADMIN,
    "os_compute_api:os-hosts:list": ADMIN,
    "os_compute_api:os-hosts:show": ADMIN,
    "os_compute_api:os-hosts:update": ADMIN,
    "os_compute_api:os-hosts:start": ADMIN,
    "os_compute_api:os-hosts:shutdown": ADMIN,
    "os_compute_api:os-hosts:reboot": ADMIN,
    "os_compute_api:ips:index": PROJECT_READER_OR_ADMIN,
    "os_compute_api:ips:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-server-password:show": PROJECT_READER_OR_ADMIN,
    "os_compute_api:os-server-password:clear": PROJECT_MEMBER_OR_ADMIN,
    "os_compute_api:os-server-diagnostics": ADMIN,
    "os_compute_api:extensions": ANY,
    "os_compute_api:os-instance-usage-audit-log:list": ADMIN,
    "os_compute_api:os-instance-usage-audit-log:show": ADMIN,
    "os_compute_api:os-migrate-server:migrate": ADMIN,
    # a project's managers list its migrations (asking for project_id=their own),
    # admins every project's and the hosts they moved between (Nova 2025.1)
    "os_compute_api:os-migrations:index": PROJECT_MANAGER_OR_ADMIN,
    "os_compute_api:os-migrations:index:all_projects": ADMIN,
    "os_compute_api:os-migrations:index:host": ADMIN,
    S + "migrations:index": PROJECT_MANAGER_OR_ADMIN,
    S + "migrations:show": PROJECT_MANAGER_OR_ADMIN,
    "os_compute_api:os-admin-actions:inject_network_info": ADMIN,
    # Nova's default since 2023.1: the service role (networking, block storage)
    "os_compute_api:os-server-external-events:create": "role:service or rule:context_is_admin",
}
