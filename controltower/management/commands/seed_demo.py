"""Demo master data and demo logins (for a local demo only; never run in production)."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from sync.services.demo import demo_master_data_seed

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 - printed to the person running the demo
DEMO_USERS = [
    ("fiona", "finance_ops", "Finance ops: works the exception queue, replays"),
    ("ivan", "integration_admin", "Integration admin: edits mappings"),
    ("mona", "manager", "Manager: read-only dashboards"),
    ("aude", "auditor", "Auditor: read-only, audit trail"),
]


class Command(BaseCommand):
    help = "Create the demo legal entities, accounts, mappings and logins (idempotent)."

    def handle(self, *args, **options):
        result = demo_master_data_seed(actor=None)
        for username, group, _ in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(Group.objects.get_or_create(name=group)[0])
            if group == "integration_admin" and not user.is_staff:
                user.is_staff = True  # mappings are edited in the Django admin too
                user.save(update_fields=["is_staff"])
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
        self.stdout.write(f"demo master data: {result['created']} rows created")
