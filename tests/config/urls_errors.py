"""The site's URLconf plus views that fail outside DRF's handling, for tests/config/test_api_errors.py."""
from django.core.exceptions import PermissionDenied
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 (the URLconf's handlers)
from config.urls import urlpatterns as site_urlpatterns


class Crash(APIView):
    """A DRF view whose bug DRF does not handle: Django answers the 500."""

    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug")


def crash(request):
    raise RuntimeError("a bug")


def denied(request):
    raise PermissionDenied


urlpatterns = [
    path("api/crash/", Crash.as_view()),
    path("api/denied/", denied),
    path("crash/", crash),
    path("denied/", denied),
    *site_urlpatterns,
]
