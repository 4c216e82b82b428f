"""Request bodies of the identity API, validated with pydantic."""
