from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs) -> None:
    from labeling.roles import roles_ensure

    roles_ensure()


class LabelingConfig(AppConfig):
    name = "labeling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every app's post_migrate, not only ours: training's permissions are created after ours.
        post_migrate.connect(_ensure_roles, dispatch_uid="labeling.roles_ensure")
