"""What every API view shares: authentication, the error shapes (a service's LabelingError
becomes its HTTP status with a JSON body) and their OpenAPI descriptions."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException
from rest_framework.views import APIView

from labeling.auth_backends import TokenAuthenticationWithPermissions
from labeling.errors import LabelingError


class ServiceError(APIException):
    """Carries a LabelingError's status and message to the client."""

    def __init__(self, error: LabelingError):
        self.status_code = error.status_code
        detail = {"detail": error.message, "code": error.code}
        if error.field:
            detail["field"] = error.field
        super().__init__(detail=detail, code=error.code)


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn a service's LabelingError into its HTTP answer."""
    try:
        yield
    except LabelingError as error:
        raise ServiceError(error) from error


class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)
    field = serializers.CharField(required=False, help_text="The input field at fault, when there is one.")


_ERROR_TEXT = {
    401: "Not authenticated (send `Authorization: Token <key>`).",
    403: "Your role may not do this, or the object is another labeler's.",
    404: "No such object, or not one you may see.",
    409: "Conflicts with the stored state (already answered differently, expired, withdrawn, instructions unread).",
    413: "The upload is larger than IMPORT_MAX_BYTES.",
    415: "Send JSON Lines (multipart field `file`, or an application/x-ndjson body).",
}


def errors(*codes: int) -> dict:
    """Schema entries for the error answers an endpoint gives (400 bodies vary: service or field errors)."""
    out: dict = {code: OpenApiResponse(ErrorOutputSerializer, description=_ERROR_TEXT[code]) for code in codes if code != 400}
    if 400 in codes:
        out[400] = OpenApiResponse(OpenApiTypes.OBJECT, description=(
            "Invalid input: `{detail, code, field}` from a service check, or `{field: [messages]}` from validation."))
    return out


class Api(APIView):
    """Base of the labeling API: token first, so an anonymous client gets 401 with `WWW-Authenticate: Token`.

    The token's query also reads the user's permissions (PostgreSQL): see auth_backends.
    """

    authentication_classes = [TokenAuthenticationWithPermissions, SessionAuthentication]
