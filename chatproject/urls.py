from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat.admin.dashboard_views import dashboard_view
from chatproject.views import MetricsView, api_not_found, health

urlpatterns = [
    # Before the admin's own paths, whose catch-all would answer it first.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="chat-dashboard"),
    path("admin/", admin.site.urls),
    path("healthz", health, name="health"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("", include("accounts.urls")),
    path("", include("chat.urls")),
    path("", include("chat.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the page needs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: any other /api/ path answers a JSON 404 (with a hint for a slash mix-up).
    re_path(r"^api/", api_not_found),
]
