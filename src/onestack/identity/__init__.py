"""Identity service (Keystone): authentication, authorization and the service catalog,
speaking the Identity API v3. See docs/identity.md for coverage against upstream."""
