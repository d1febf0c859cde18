"""What OPTIONS answers on every endpoint: its name, description and formats; the Allow header lists its methods.

DRF's SimpleMetadata also describes the fields of POST's serializer, which needs a view with `get_serializer`: the
upload view takes a file the services check, not a serializer, and the OpenAPI schema at /api/schema/ describes
every field anyway. So this metadata leaves the fields out, and works for every view.
"""

from rest_framework.metadata import SimpleMetadata


class EndpointMetadata(SimpleMetadata):
    def determine_metadata(self, request, view) -> dict:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
            "schema": "/api/schema/",
        }
