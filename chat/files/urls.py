from django.urls import path

from . import views as files

app_name = "files"

urlpatterns = [
    path("<int:pk>/", files.file_download, name="file"),
    path("<int:pk>/thumbnail/", files.file_thumbnail, name="thumbnail"),
]
