from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.conversation_list, name="list"),
    path("new/", views.conversation_new, name="new"),
    path("search/", views.search, name="search"),
    path("<int:pk>/", views.conversation_detail, name="conversation"),
    path("<int:pk>/messages/", views.message_create, name="send"),
    path(
        "<int:pk>/messages/<int:message_id>/retry/",
        views.message_retry,
        name="retry",
    ),
    path(
        "<int:pk>/messages/<int:message_id>/regenerate/",
        views.message_regenerate,
        name="regenerate",
    ),
    path("<int:pk>/messages/<int:message_id>/edit/", views.message_edit, name="edit"),
    path("<int:pk>/rename/", views.conversation_rename, name="rename"),
    path("<int:pk>/archive/", views.conversation_archive, name="archive"),
    path("<int:pk>/delete/", views.conversation_delete, name="delete"),
    path("<int:pk>/export/", views.conversation_export, name="export"),
]
