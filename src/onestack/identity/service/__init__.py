"""Identity logic, one module per area; handlers in ``api/`` call these."""
