from django.urls import path

from chat import views

urlpatterns = [
    path("api/chat/stream", views.chat_stream, name="chat-stream"),
]
