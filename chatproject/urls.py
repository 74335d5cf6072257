from django.contrib import admin
from django.urls import include, path, re_path

from chatproject.views import api_not_found, health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health, name="health"),
    path("", include("accounts.urls")),
    path("", include("chat.urls")),
    # Last: any other /api/ path answers a JSON 404 (with a hint for a slash mix-up).
    re_path(r"^api/", api_not_found),
]
