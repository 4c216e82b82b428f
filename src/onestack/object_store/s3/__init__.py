"""The S3 API over the object store's data, as Swift's s3api middleware serves it:
``handler.handler(st)`` answers requests below the S3 endpoint (path-style)."""
