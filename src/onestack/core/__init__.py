"""What every service shares: config, database, errors, request context, auth,
policy and API helpers. Nothing in here imports a service (a test checks it)."""
