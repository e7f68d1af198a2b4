from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("<str:room_name>/", views.room, name="room"),
    path("<str:room_name>/edge/", views.on_edge, name="on_edge"),
    path("<str:room_name>/live/", views.live, name="live"),
]
