from django.apps import AppConfig


class HealthConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "health"

    def ready(self) -> None:
        from registry.page_sections import ServerPageSection, register_server_section

        # The server page's health section: the charts of health.js (the page already loads events.js).
        register_server_section(
            ServerPageSection(
                key="health",
                template="health/_server_health_section.html",
                scripts=("plotly/plotly.min.js", "js/health.js"),
            )
        )
