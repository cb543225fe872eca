"""Which legal entities a person may see."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EntityAccess(models.Model):
    """Limits one user to some legal entities.

    A user without a row sees every entity. A user with a row sees only the entities listed —
    none listed means nothing — in every list, count, chart, search, export and API answer;
    the selectors in ``sync.selectors`` apply it, so a screen cannot forget to.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="entity_access"
    )
    entities = models.ManyToManyField("sync.LegalEntity", blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "entity access"
        verbose_name_plural = "entity access"

    def __str__(self) -> str:
        return f"Entity access of {self.user}"
