from django.urls import path

from accounts import views

urlpatterns = [
    path("api/auth/dev/login", views.DevLoginApi.as_view(), name="auth-dev-login"),
]
