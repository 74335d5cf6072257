from django.urls import path

from accounts import views

urlpatterns = [
    path("api/auth/dev/login", views.DevLoginApi.as_view(), name="auth-dev-login"),
    path("api/auth/wechat/login", views.WechatLoginApi.as_view(), name="auth-wechat-login"),
    path("api/auth/logout", views.LogoutApi.as_view(), name="auth-logout"),
    path(
        "api/auth/logout/everywhere",
        views.LogoutEverywhereApi.as_view(),
        name="auth-logout-everywhere",
    ),
    path("api/auth/me", views.MeApi.as_view(), name="auth-me"),
    path("api/auth/webview-ticket", views.WebviewTicketApi.as_view(), name="auth-webview-ticket"),
    path(
        "api/auth/webview-ticket/exchange",
        views.WebviewTicketExchangeApi.as_view(),
        name="auth-webview-ticket-exchange",
    ),
]
