"""Django's own error answers as JSON under /api/, in the API's shape; the usual HTML pages elsewhere.

DRF answers the errors its views raise. These handlers answer the rest: a path that matches no route
(`/api/assignments/abc/label/` fails `<int:assignment_id>`, `/api/nope/`), an exception DRF does not
handle (500), a request Django rejects before any view (400, 403). An API client then always reads
`{"detail": …, "code": …}`, as a service error's answer (ErrorOutput in the schema).
"""
from django.http import JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def api_error(detail: str, code: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def bad_request(request, exception):
    if is_api(request):
        return api_error("Bad request.", "bad_request", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if is_api(request):
        return api_error("You do not have permission to perform this action.", "forbidden", 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if is_api(request):
        return api_error("Not found.", "not_found", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api(request):
        return api_error("Server error.", "server_error", 500)
    return defaults.server_error(request)
