from django.apps import AppConfig


class FusionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fusion"

    def ready(self) -> None:
        from django.conf import settings

        from fusion.strategies import load_configured_strategies

        load_configured_strategies(settings.FUSION_STRATEGIES)
