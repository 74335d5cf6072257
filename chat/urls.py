from django.urls import path
from django.views.generic import RedirectView

from chat import pages, views

urlpatterns = [
    path("api/chat/stream", views.chat_stream, name="chat-stream"),
    path("api/chat/records/<int:record_id>/events", views.record_events, name="record-events"),
    path("api/chat/records/<int:record_id>/stop", views.record_stop, name="record-stop"),
    path("h5/", pages.h5_chat, name="h5-chat"),
    # The page is opened by hand too: without the slash, go there (keeping ?ticket=...).
    path("h5", RedirectView.as_view(pattern_name="h5-chat", query_string=True)),
]
