"""The `operators` and `viewers` groups exist after `migrate`: the roles (registry/permissions.py) are membership
of these groups, and an admin should only have to add people to them, not create them first."""

from django.db import migrations

# The names the roles are read by (migrations load after the apps are ready, so importing the module is safe).
from registry.permissions import OPERATOR_GROUP, VIEWER_GROUP

ROLE_GROUPS = (OPERATOR_GROUP, VIEWER_GROUP)


def create_role_groups(apps, schema_editor):  # type: ignore[no-untyped-def]
    group = apps.get_model("auth", "Group")
    for name in ROLE_GROUPS:
        group.objects.using(schema_editor.connection.alias).get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("registry", "0004_capability_snapshot_truncation"),
    ]

    # Reversing leaves the groups (and who is in them) alone.
    operations = [migrations.RunPython(create_role_groups, migrations.RunPython.noop)]
