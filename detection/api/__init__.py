"""The REST API under /api/v1/: token or session authentication, one error shape, OpenAPI schema at /api/schema/."""
