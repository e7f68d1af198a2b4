from django.urls import include, path

urlpatterns = [
    path("chat/", include("chat.urls")),
    path("accounts/", include("django.contrib.auth.urls")),  # Django's own login
]
