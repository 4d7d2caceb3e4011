from django.urls import path

from .views import conversations, export, feedback, messages, search, shares

app_name = "chat"

urlpatterns = [
    path("", conversations.conversation_list, name="list"),
    path("new/", conversations.conversation_new, name="new"),
    path("search/", search.search, name="search"),
    path("<int:pk>/", conversations.conversation_detail, name="conversation"),
    path("<int:pk>/messages/", messages.message_create, name="send"),
    path(
        "<int:pk>/messages/<int:message_id>/",
        messages.message_fragment,
        name="message",
    ),
    path(
        "<int:pk>/messages/<int:message_id>/retry/",
        messages.message_retry,
        name="retry",
    ),
    path(
        "<int:pk>/messages/<int:message_id>/regenerate/",
        messages.message_regenerate,
        name="regenerate",
    ),
    path("<int:pk>/messages/<int:message_id>/edit/", messages.message_edit, name="edit"),
    path(
        "<int:pk>/messages/<int:message_id>/feedback/",
        feedback.message_feedback,
        name="feedback",
    ),
    path("<int:pk>/share/", shares.conversation_share, name="share"),
    path("<int:pk>/share/revoke/", shares.conversation_share_revoke, name="share_revoke"),
    path("<int:pk>/assistant/", conversations.conversation_assistant, name="assistant"),
    path("<int:pk>/instructions/", conversations.conversation_instructions, name="instructions"),
    path("<int:pk>/rename/", conversations.conversation_rename, name="rename"),
    path("<int:pk>/archive/", conversations.conversation_archive, name="archive"),
    path("<int:pk>/delete/", conversations.conversation_delete, name="delete"),
    path("<int:pk>/export/", export.conversation_export, name="export"),
]
