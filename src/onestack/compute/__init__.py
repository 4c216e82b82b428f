"""The compute service: Nova's API v2.1 with microversions (flavors, keypairs,
availability zones, limits so far; servers come later)."""
