"""Default policy rules for the identity API, after Keystone's secure-RBAC defaults.

Personas: ``admin`` (any scope) may do everything, as in Keystone where a
project-scoped admin is a cloud admin; ``reader`` with system scope reads
everything; a domain-scoped ``reader`` reads its domain; everyone reads and
manages what is their own (their user, their tokens, application credentials and
EC2 credentials). Operators override any rule with ``DATA_DIR/policy.yaml``.
"""

from __future__ import annotations

ADMIN = "role:admin or is_admin:True"
SYSTEM_READER = "(role:reader and system_scope:all)"


def domain_reader(attr: str) -> str:
    return f"(role:reader and domain_id:%({attr})s)"


def _admin_or_reader(domain_attr: str | None) -> str:
    rule = f"rule:admin_required or {SYSTEM_READER}"
    return f"{rule} or {domain_reader(domain_attr)}" if domain_attr else rule


OWNER = "user_id:%(target.user_id)s"

DEFAULTS: dict[str, str] = {
    "admin_required": ADMIN,
    "service_role": "role:service",
    "owner": OWNER,
    "admin_or_owner": "rule:admin_required or rule:owner",
    # tokens
    "identity:validate_token": "rule:admin_required or rule:service_role or " + SYSTEM_READER
    + " or user_id:%(target.token.user_id)s",
    "identity:check_token": "rule:admin_required or rule:service_role or " + SYSTEM_READER
    + " or user_id:%(target.token.user_id)s",
    "identity:revoke_token": "rule:admin_required or rule:service_role or "
    "user_id:%(target.token.user_id)s",
    # domains
    "identity:get_domain": _admin_or_reader("target.domain.id")
    + " or token.project.domain.id:%(target.domain.id)s",
    "identity:list_domains": _admin_or_reader("target.domain.id"),
    "identity:create_domain": "rule:admin_required",
    "identity:update_domain": "rule:admin_required",
    "identity:delete_domain": "rule:admin_required",
    # projects
    "identity:get_project": _admin_or_reader("target.project.domain_id")
    + " or project_id:%(target.project.id)s",
    "identity:list_projects": _admin_or_reader("target.domain_id"),
    "identity:list_user_projects": _admin_or_reader("target.user.domain_id")
    + " or user_id:%(target.user.id)s",
    "identity:create_project": "rule:admin_required",
    "identity:update_project": "rule:admin_required",
    "identity:delete_project": "rule:admin_required",
    "identity:list_project_tags": _admin_or_reader("target.project.domain_id")
    + " or project_id:%(target.project.id)s",
    "identity:get_project_tag": _admin_or_reader("target.project.domain_id")
    + " or project_id:%(target.project.id)s",
    "identity:update_project_tags": "rule:admin_required",
    "identity:create_project_tag": "rule:admin_required",
    "identity:delete_project_tags": "rule:admin_required",
    "identity:delete_project_tag": "rule:admin_required",
    # users
    "identity:get_user": _admin_or_reader("target.user.domain_id")
    + " or user_id:%(target.user.id)s",
    "identity:list_users": _admin_or_reader("target.domain_id"),
    "identity:create_user": "rule:admin_required",
    "identity:update_user": "rule:admin_required",
    "identity:delete_user": "rule:admin_required",
    "identity:change_password": "rule:admin_required or user_id:%(target.user.id)s",
    "identity:list_groups_for_user": _admin_or_reader("target.user.domain_id")
    + " or user_id:%(target.user.id)s",
    # groups
    "identity:get_group": _admin_or_reader("target.group.domain_id"),
    "identity:list_groups": _admin_or_reader("target.domain_id"),
    "identity:create_group": "rule:admin_required",
    "identity:update_group": "rule:admin_required",
    "identity:delete_group": "rule:admin_required",
    "identity:list_users_in_group": _admin_or_reader("target.group.domain_id"),
    "identity:add_user_to_group": "rule:admin_required",
    "identity:remove_user_from_group": "rule:admin_required",
    "identity:check_user_in_group": _admin_or_reader("target.group.domain_id"),
    # roles and implied roles
    "identity:get_role": _admin_or_reader(None),
    "identity:list_roles": _admin_or_reader(None),
    "identity:create_role": "rule:admin_required",
    "identity:update_role": "rule:admin_required",
    "identity:delete_role": "rule:admin_required",
    "identity:get_domain_role": _admin_or_reader(None),
    "identity:list_domain_roles": _admin_or_reader(None),
    "identity:create_domain_role": "rule:admin_required",
    "identity:update_domain_role": "rule:admin_required",
    "identity:delete_domain_role": "rule:admin_required",
    "identity:get_implied_role": _admin_or_reader(None),
    "identity:list_implied_roles": _admin_or_reader(None),
    "identity:list_role_inference_rules": _admin_or_reader(None),
    "identity:create_implied_role": "rule:admin_required",
    "identity:delete_implied_role": "rule:admin_required",
    "identity:check_implied_role": _admin_or_reader(None),
    # grants and assignments
    "identity:check_grant": _admin_or_reader("target.domain.id"),
    "identity:list_grants": _admin_or_reader("target.domain.id"),
    "identity:create_grant": "rule:admin_required",
    "identity:revoke_grant": "rule:admin_required",
    "identity:list_system_grants_for_user": _admin_or_reader(None),
    "identity:check_system_grant_for_user": _admin_or_reader(None),
    "identity:create_system_grant_for_user": "rule:admin_required",
    "identity:revoke_system_grant_for_user": "rule:admin_required",
    "identity:list_system_grants_for_group": _admin_or_reader(None),
    "identity:check_system_grant_for_group": _admin_or_reader(None),
    "identity:create_system_grant_for_group": "rule:admin_required",
    "identity:revoke_system_grant_for_group": "rule:admin_required",
    "identity:list_role_assignments": _admin_or_reader("target.domain_id"),
    "identity:list_role_assignments_for_tree": _admin_or_reader("target.project.domain_id")
    + " or (role:admin and project_id:%(target.project.id)s)",
    # catalog
    "identity:get_region": "",
    "identity:list_regions": "",
    "identity:create_region": "rule:admin_required",
    "identity:update_region": "rule:admin_required",
    "identity:delete_region": "rule:admin_required",
    "identity:get_service": _admin_or_reader(None),
    "identity:list_services": _admin_or_reader(None),
    "identity:create_service": "rule:admin_required",
    "identity:update_service": "rule:admin_required",
    "identity:delete_service": "rule:admin_required",
    "identity:get_endpoint": _admin_or_reader(None),
    "identity:list_endpoints": _admin_or_reader(None),
    "identity:create_endpoint": "rule:admin_required",
    "identity:update_endpoint": "rule:admin_required",
    "identity:delete_endpoint": "rule:admin_required",
    # credentials (EC2 and others)
    "identity:get_credential": "rule:admin_required or " + SYSTEM_READER
    + " or user_id:%(target.credential.user_id)s",
    "identity:list_credentials": "rule:admin_required or " + SYSTEM_READER + " or user_id:%(target.credential.user_id)s",
    "identity:create_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:update_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:delete_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    "identity:ec2_get_credential": "rule:admin_required or " + SYSTEM_READER
    + " or user_id:%(target.credential.user_id)s",
    "identity:ec2_list_credentials": "rule:admin_required or " + SYSTEM_READER + " or rule:owner",
    "identity:ec2_create_credential": "rule:admin_required or rule:owner",
    "identity:ec2_delete_credential": "rule:admin_required or user_id:%(target.credential.user_id)s",
    # a token for a request signed with an EC2 credential: EC2/S3 front ends only
    "identity:ec2tokens_validate": "rule:admin_required or rule:service_role",
    "identity:s3tokens_validate": "rule:admin_required or rule:service_role",
    # application credentials and access rules
    "identity:get_application_credential": "rule:admin_required or " + SYSTEM_READER + " or rule:owner",
    "identity:list_application_credentials": "rule:admin_required or " + SYSTEM_READER + " or rule:owner",
    "identity:create_application_credential": "user_id:%(user_id)s",
    "identity:delete_application_credential": "rule:admin_required or rule:owner",
    "identity:get_access_rule": "rule:admin_required or " + SYSTEM_READER + " or rule:owner",
    "identity:list_access_rules": "rule:admin_required or " + SYSTEM_READER + " or rule:owner",
    "identity:delete_access_rule": "rule:admin_required or rule:owner",
    # unified limits
    "identity:get_registered_limit": "",
    "identity:list_registered_limits": "",
    "identity:create_registered_limits": "rule:admin_required",
    "identity:update_registered_limit": "rule:admin_required",
    "identity:delete_registered_limit": "rule:admin_required",
    "identity:get_limit_model": "",
    "identity:get_limit": "rule:admin_required or " + SYSTEM_READER
    + " or project_id:%(target.limit.project_id)s or domain_id:%(target.limit.domain_id)s",
    "identity:list_limits": "",
    "identity:create_limits": "rule:admin_required",
    "identity:update_limit": "rule:admin_required",
    "identity:delete_limit": "rule:admin_required",
    # the deprecated policy blobs API
    "identity:get_policy": _admin_or_reader(None),
    "identity:list_policies": _admin_or_reader(None),
    "identity:create_policy": "rule:admin_required",
    "identity:update_policy": "rule:admin_required",
    "identity:delete_policy": "rule:admin_required",
}
