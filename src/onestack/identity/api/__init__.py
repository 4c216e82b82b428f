"""HTTP handlers of the Identity API v3, one module per resource; each exposes
``routes``, mounted under ``/v3`` by ``onestack.identity.app``."""
