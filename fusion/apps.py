from django.apps import AppConfig


class FusionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fusion"
