from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from chat.views.shares import shared_conversation

from . import views

urlpatterns = [
    path("", RedirectView.as_view(url="/chat/", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("chat/", include("chat.urls")),
    path("tasks/", include("tasks.urls")),
    path("files/", include("chat.files.urls")),
    # A shared conversation: read-only, no login (chat/shares.py).
    path("s/<str:token>/", shared_conversation, name="shared"),
]
