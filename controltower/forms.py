"""Forms of the screens. Filters live in sync.filters (shared with the API)."""

from __future__ import annotations

from django import forms


class ReplayForm(forms.Form):
    """Why a person replays a journey; goes into the audit trail."""

    DEFAULT_REASON = "Replayed from the Control Tower after the cause was fixed."

    reason = forms.CharField(
        max_length=500,
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Reason (optional)", "size": 32}),
    )

    def reason_or_default(self) -> str:
        return self.cleaned_data.get("reason") or self.DEFAULT_REASON
