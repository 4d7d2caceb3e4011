from django.urls import path

from . import views

app_name = "tasks"

urlpatterns = [
    path("<int:pk>/", views.task_detail, name="detail"),
    path("<int:pk>/webhook/", views.task_webhook, name="webhook"),
    path("<int:pk>/cancel/", views.task_cancel, name="cancel"),
]
