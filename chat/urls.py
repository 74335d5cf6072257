from django.urls import path

from chat import views

urlpatterns = [
    path("api/chat/stream", views.chat_stream, name="chat-stream"),
    path("api/chat/records/<int:record_id>/events", views.record_events, name="record-events"),
    path("api/chat/records/<int:record_id>/stop", views.record_stop, name="record-stop"),
]
