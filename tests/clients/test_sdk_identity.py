"""openstacksdk and keystoneauth1, configured only by the clouds.yaml that
`onestack up` writes, against a real server process."""

from __future__ import annotations

import uuid

import openstack
import pytest
from keystoneauth1 import loading, session

from tests.clients.conftest import Server

pytestmark = pytest.mark.slow


def connect(server: Server, cloud: str = "onestack-admin") -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def test_keystoneauth_session_from_clouds_yaml(server: Server) -> None:
    conn = connect(server, "onestack")
    sess: session.Session = conn.session
    assert sess.get_token()
    assert sess.get_project_id()
    url = sess.get_endpoint(service_type="identity", interface="public")
    assert url.startswith(server.url + "/identity")
    access = sess.auth.get_access(sess)
    assert set(access.role_names) == {"member", "reader"}
    assert access.project_name == "demo"


def test_keystoneauth_password_plugin_directly(server: Server) -> None:
    import yaml

    auth_cfg = yaml.safe_load(server.clouds_yaml.read_text())["clouds"]["onestack-admin"]["auth"]
    loader = loading.get_plugin_loader("password")
    auth = loader.load_from_options(**auth_cfg)
    sess = session.Session(auth=auth)
    assert "admin" in auth.get_access(sess).role_names
    bad = loader.load_from_options(**{**auth_cfg, "password": "wrong"})
    from keystoneauth1.exceptions import Unauthorized

    with pytest.raises(Unauthorized):
        session.Session(auth=bad).get_token()


def test_sdk_identity_proxy_crud(server: Server) -> None:
    conn = connect(server)
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    project = conn.identity.create_project(name=name, domain_id="default", description="d")
    try:
        assert conn.identity.get_project(project.id).name == name
        user = conn.identity.create_user(name=name, password="s3cret-pw", default_project_id=project.id,
                                         domain_id="default")
        member = conn.identity.find_role("member")
        conn.identity.assign_project_role_to_user(project, user, member)
        assert conn.identity.validate_user_has_project_role(project, user, member)
        assert name in [u.name for u in conn.identity.users()]
        # the new user can log in with the SDK and sees only its project
        cfg = openstack.config.OpenStackConfig(config_files=[str(server.clouds_yaml)]).get_one(
            "onestack", auth={"username": name, "password": "s3cret-pw", "project_name": name})
        mine = openstack.connection.Connection(config=cfg)
        assert [p.name for p in mine.identity.user_projects(mine.current_user_id)] == [name]
        conn.identity.delete_user(user)
    finally:
        conn.identity.delete_project(project)
    assert conn.identity.find_project(name) is None


def test_sdk_catalog_and_services(server: Server) -> None:
    conn = connect(server)
    services = {s.type: s for s in conn.identity.services()}
    assert "identity" in services
    endpoints = list(conn.identity.endpoints(service_id=services["identity"].id))
    assert {e.interface for e in endpoints} == {"public", "internal", "admin"}
    assert [r.id for r in conn.identity.regions()] == ["RegionOne"]
