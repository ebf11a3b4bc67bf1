from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import api_docs

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("labeling.api.urls")),
    path("api/schema/", api_docs.SchemaView.as_view(), name="schema"),  # researchers and admins: config/api_docs.py
    path("api/docs/", api_docs.SwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", api_docs.RedocView.as_view(url_name="schema"), name="api-redoc"),
    path("training/", include("training.urls")),
    path("", include("labeling.urls")),
]

# JSON under /api/ (as the API's own errors), Django's pages elsewhere: config/api_errors.py.
handler400 = "config.api_errors.bad_request"
handler403 = "config.api_errors.permission_denied"
handler404 = "config.api_errors.page_not_found"
handler500 = "config.api_errors.server_error"
