"""The OpenAPI schema and its readers (Swagger UI, Redoc): for researchers and admins, under the site's CSP.

Who: SPECTACULAR_SETTINGS' SERVE_PERMISSIONS (IsResearcher: the `labeling.view_research` permission)
and SERVE_AUTHENTICATION (token first, as the API, so an anonymous client gets 401). Refusals are JSON
as on every /api/ path (the schema view would render them as YAML, the docs views as text), except
that an anonymous browser on a docs page is sent to the login page and back.

CSP (`script-src 'self'; style-src 'self'`): the pages load the sidecar's vendored Swagger UI and
Redoc from /static/, Swagger UI's init script is a same-origin file (the split view's `?script=`),
and our templates (templates/api_docs/) replace the stock ones' inline <style>, Google Fonts and
inline Redoc init. Redoc's page alone adds two style hashes (below) and has search off (its index
runs in a blob: worker); its sidebar's Redocly logo (cdn.redoc.ly) stays blocked by `img-src`, and
Redoc hides the broken image. tests/browser/test_api_docs.py loads both pages in chromium.
"""
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.renderers import JSONRenderer


class JsonErrors:
    """Render an error answer as JSON whatever renderer the view negotiated."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response


class DocsPage(JsonErrors):
    """A docs page: an anonymous browser logs in first rather than reading a 401."""

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)


class SchemaView(JsonErrors, SpectacularAPIView):
    pass


class SwaggerView(DocsPage, SpectacularSwaggerSplitView):
    template_name = "api_docs/swagger_ui.html"


# Redoc (styled-components, style-loader) adds <style> elements: empty ones it fills through the CSSOM, which
# the CSP does not govern, and one of bundled fixed CSS. Their hashes let exactly those in; scripts stay 'self'.
# A sidecar upgrade may change the second: chromium's console then names the new hash (the browser test fails).
REDOC_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty string
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar's CSS
]


class RedocView(DocsPage, SpectacularRedocView):
    template_name = "api_docs/redoc.html"

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response._csp_update = {"style-src": REDOC_STYLE_HASHES}  # config/middleware.py: django-csp's own path
        return response
