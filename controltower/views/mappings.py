"""Mappings on screen: entities, GL accounts, posting rules, product and tax mappings, customer
links, FX rates and SLA policies — list, filter, create, edit (validated by the same service as
the API and the admin), history of changes; posting rules and product mappings go through a
second admin's approval (``sync.services.mapping_changes``); after a fix, the open exceptions it
unblocks, to replay in one action ("fix and replay")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied as Forbidden
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError, Q, QuerySet, RestrictedError
from django.forms import modelform_factory
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from controltower.views.base import paginate, render_screen, required_reason, screen
from sync.errors import DomainError
from sync.errors import PermissionDenied as Refused
from sync.mapping_kinds import (
    ENTITY_KINDS,
    KINDS,
    NEEDS_APPROVAL,
    editable_fields,
    unblocks,
    values_of,
)
from sync.models import AuditEntry, ExceptionCase, GLAccount, LegalEntity, MappingChange
from sync.permissions import (
    can_edit_global_mappings,
    can_edit_mappings,
    can_replay,
    can_view,
    entity_scope,
)
from sync.selectors import entities_visible_to, exceptions_visible_to, scoped
from sync.services.journeys import journeys_replay_bulk
from sync.services.mapping_changes import (
    mapping_change_approve,
    mapping_change_propose,
    mapping_change_reject,
    mapping_change_withdraw,
)
from sync.services.mappings import mapping_delete, mapping_save

LIST = "controltower/mappings/list.html"
INDEX = "controltower/mappings/index.html"
EDIT = "controltower/mappings/edit.html"
HISTORY = "controltower/mappings/history.html"
CHANGES = "controltower/mappings/changes.html"
CHANGE = "controltower/mappings/change.html"
FIX = "controltower/mappings/fix.html"

LABELS = {
    "legal_entity": ("Legal entities", "legal entity"),
    "gl_account": ("GL accounts", "GL account"),
    "posting_rule": ("Posting rules", "posting rule"),
    "product_mapping": ("Product mappings", "product mapping"),
    "tax_mapping": ("Tax mappings", "tax mapping"),
    "customer_link": ("Customer links", "customer link"),
    "fx_rate": ("FX rates", "FX rate"),
    "sla_policy": ("SLA policies", "SLA policy"),
}
COLUMNS = {
    "legal_entity": ["code", "name", "functional_currency", "country", "is_active"],
    "gl_account": ["legal_entity", "number", "name", "kind", "is_active"],
    "posting_rule": [
        "legal_entity",
        "revenue_type",
        "product_family",
        "effective_from",
        "ar_account",
        "revenue_account",
        "deferred_revenue_account",
    ],
    "product_mapping": [
        "source_system",
        "source_ref",
        "product_code",
        "product_name",
        "product_family",
        "revenue_type",
        "effective_from",
    ],
    "tax_mapping": [
        "legal_entity",
        "source_rate_ref",
        "jurisdiction",
        "rate_percent",
        "erp_tax_code",
        "tax_account",
    ],
    "customer_link": ["legal_entity", "billing_customer_id", "crm_account_id", "erp_customer_id"],
    "fx_rate": ["rate_date", "base_currency", "quote_currency", "rate"],
    "sla_policy": ["journey_type", "warning_minutes", "target_minutes"],
}
SEARCH = {
    "legal_entity": ["code", "name"],
    "gl_account": ["number", "name"],
    "posting_rule": ["product_family", "revenue_type"],
    "product_mapping": ["source_ref", "product_code", "product_name", "product_family"],
    "tax_mapping": ["source_rate_ref", "jurisdiction", "erp_tax_code"],
    "customer_link": ["billing_customer_id", "crm_account_id", "erp_customer_id"],
    "fx_rate": ["base_currency", "quote_currency"],
    "sla_policy": ["journey_type"],
}


def _kind(kind: str) -> type:
    if kind not in KINDS:
        raise Http404("No such mapping kind.")
    return KINDS[kind]


def _rows(request: HttpRequest, kind: str) -> QuerySet:
    model = _kind(kind)
    fks = [f.name for f in editable_fields(model) if f.is_relation]
    qs = model.objects.select_related(*fks)
    if kind == "legal_entity":
        return scoped(qs, request.user, "pk")
    if kind in ENTITY_KINDS:
        return scoped(qs, request.user)
    return qs


def _may_edit(user: Any, kind: str) -> bool:
    if kind in ENTITY_KINDS:
        return can_edit_mappings(user)
    return can_edit_global_mappings(user)


def _cells(obj: Any, kind: str) -> list[Any]:
    out = []
    for name in COLUMNS[kind]:
        value = getattr(obj, name)
        if isinstance(value, LegalEntity):
            value = value.code
        elif isinstance(value, GLAccount):
            value = f"{value.number} {value.name}"
        out.append(value)
    return out


@screen
@require_GET
def mapping_index(request: HttpRequest) -> HttpResponse:
    kinds = [
        {
            "kind": k,
            "label": LABELS[k][0],
            "count": _rows(request, k).count(),
            "approval": k in NEEDS_APPROVAL,
        }
        for k in KINDS
    ]
    pending = _changes(request).filter(state=MappingChange.State.PENDING).count()
    return render_screen(request, INDEX, {"kinds": kinds, "pending": pending})


@screen
@require_GET
def mapping_list(request: HttpRequest, kind: str) -> HttpResponse:
    qs = _rows(request, kind)
    q = request.GET.get("q", "").strip()
    if q:
        cond = Q()
        for field in SEARCH[kind]:
            cond |= Q(**{f"{field}__icontains": q})
        qs = qs.filter(cond)
    entity = request.GET.get("entity", "").strip()
    if entity and kind in ENTITY_KINDS:
        qs = qs.filter(legal_entity__code=entity)
    page = paginate(request, qs.order_by(*(_kind(kind)._meta.ordering or ["pk"]), "pk"))
    context = {
        "kind": kind,
        "label": LABELS[kind],
        "columns": [_kind(kind)._meta.get_field(c).verbose_name for c in COLUMNS[kind]],
        "rows": [(obj, _cells(obj, kind)) for obj in page],
        "page_obj": page,
        "q": q,
        "entity": entity,
        "entities": entities_visible_to(request.user) if kind in ENTITY_KINDS else [],
        "may_edit": _may_edit(request.user, kind),
        "approval": kind in NEEDS_APPROVAL,
        "pending": {
            c.target_id: c
            for c in MappingChange.objects.filter(
                kind=kind, state=MappingChange.State.PENDING, target_id__isnull=False
            )
        },
    }
    return render_screen(request, LIST, context)


def _form_class(request: HttpRequest, kind: str) -> type[forms.ModelForm]:
    model = _kind(kind)
    names = [f.name for f in editable_fields(model) if f.name != "customer"]
    base = modelform_factory(model, fields=names)
    visible = entities_visible_to(request.user)

    class MappingForm(base):  # type: ignore[misc, valid-type]
        reason = forms.CharField(
            max_length=500,
            required=True,
            help_text="Why: kept in the history (and shown to the approver).",
        )

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for name, field in self.fields.items():
                if name == "legal_entity":
                    field.queryset = visible
                elif (
                    isinstance(field, forms.ModelChoiceField) and field.queryset.model is GLAccount
                ):
                    field.queryset = scoped(
                        GLAccount.objects.select_related("legal_entity"), request.user
                    )

    return MappingForm


@screen
@require_http_methods(["GET", "POST"])
def mapping_edit(request: HttpRequest, kind: str, pk: int | None = None) -> HttpResponse:
    model = _kind(kind)
    obj = get_object_or_404(_rows(request, kind), pk=pk) if pk is not None else None
    may_edit = _may_edit(request.user, kind)
    if request.method == "POST" and not may_edit:
        raise Forbidden("Your role may not change this kind of mapping.")
    form_class = _form_class(request, kind)
    initial = {k: v for k, v in request.GET.items() if k in form_class.base_fields}
    form = form_class(request.POST or None, instance=obj, initial=initial)
    if request.method == "POST" and form.is_valid():
        instance = form.save(commit=False)
        reason = form.cleaned_data["reason"]
        try:
            if kind in NEEDS_APPROVAL:
                change = mapping_change_propose(
                    actor=request.user,
                    kind=kind,
                    reason=reason,
                    values=values_of(instance),
                    target_id=obj.pk if obj else None,
                )
                messages.success(
                    request,
                    f"Change #{change.pk} proposed: it applies when another integration admin "
                    "approves it.",
                )
                return redirect("mapping-change", pk=change.pk)
            saved = mapping_save(actor=request.user, instance=instance, reason=reason)
        except Refused as exc:
            raise Forbidden(str(exc)) from exc
        except ValidationError as exc:
            _add_errors(form, exc)
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{LABELS[kind][1].capitalize()} saved.")
            return redirect(_fix_url(kind, saved.pk))
    context = {
        "kind": kind,
        "label": LABELS[kind],
        "form": form,
        "obj": obj,
        "may_edit": may_edit,
        "approval": kind in NEEDS_APPROVAL,
        "model_name": model._meta.verbose_name,
    }
    return render_screen(request, EDIT, context, status=400 if form.errors else 200)


def _add_errors(form: forms.ModelForm, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@screen
@require_POST
def mapping_delete_view(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    obj = get_object_or_404(_rows(request, kind), pk=pk)
    if not _may_edit(request.user, kind):
        raise Forbidden("Your role may not change this kind of mapping.")
    reason, error = required_reason(request, "the mapping is deleted")
    if error:
        messages.error(request, error)
        return redirect("mapping-edit", kind=kind, pk=pk)
    try:
        if kind in NEEDS_APPROVAL:
            change = mapping_change_propose(
                actor=request.user, kind=kind, reason=reason, target_id=pk, delete=True
            )
            messages.success(request, f"Deletion proposed as change #{change.pk}.")
            return redirect("mapping-change", pk=change.pk)
        mapping_delete(actor=request.user, instance=obj, reason=reason)
    except Refused as exc:
        raise Forbidden(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("mapping-edit", kind=kind, pk=pk)
    except (ProtectedError, RestrictedError):  # PROTECT: something posted depends on it
        messages.error(request, "Other records depend on this mapping; it cannot be deleted.")
        return redirect("mapping-edit", kind=kind, pk=pk)
    messages.success(request, f"{LABELS[kind][1].capitalize()} deleted.")
    return redirect("mapping-list", kind=kind)


@screen
@require_GET
def mapping_history(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    model = _kind(kind)
    obj = _rows(request, kind).filter(pk=pk).first()
    entries = AuditEntry.objects.filter(
        object_type=model._meta.label_lower, object_id=str(pk)
    ).select_related("actor")
    if obj is None and not entries.exists():
        raise Http404("No such mapping.")
    changes = MappingChange.objects.filter(kind=kind, target_id=pk).select_related(
        "proposed_by", "decided_by"
    )
    rows = []
    for entry in entries.order_by("-at", "-id"):
        before, after = entry.before or {}, entry.after or {}
        keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
        rows.append({"entry": entry, "diff": [(k, before.get(k), after.get(k)) for k in keys]})
    context = {
        "kind": kind,
        "label": LABELS[kind],
        "obj": obj,
        "pk": pk,
        "rows": rows,
        "changes": changes,
    }
    return render_screen(request, HISTORY, context)


# --- maker-checker ------------------------------------------------------------------------------


def _changes(request: HttpRequest) -> QuerySet[MappingChange]:
    """Changes the reader may see: an entity-limited reader sees those of their entities."""
    qs = MappingChange.objects.select_related("proposed_by", "decided_by", "legal_entity")
    ids = entity_scope(request.user)
    if not can_view(request.user):
        return qs.none()
    return qs if ids is None else qs.filter(legal_entity_id__in=ids)


@screen
@require_GET
def change_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", MappingChange.State.PENDING)
    qs = _changes(request)
    if state in MappingChange.State.values:
        qs = qs.filter(state=state)
    context = {
        "page_obj": paginate(request, qs),
        "state": state,
        "states": MappingChange.State.choices,
    }
    return render_screen(request, CHANGES, context)


def _describe(change: MappingChange) -> list[tuple[str, Any, Any]]:
    before = change.before or {}
    keys = list(dict.fromkeys([*before, *change.values]))
    if change.operation == MappingChange.Operation.DELETE:
        return [(k, before.get(k), None) for k in keys]
    return [
        (k, before.get(k), change.values.get(k))
        for k in keys
        if before.get(k) != change.values.get(k)
    ]


@screen
@require_GET
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    change = get_object_or_404(_changes(request), pk=pk)
    context = {
        "change": change,
        "label": LABELS.get(change.kind, (change.kind, change.kind)),
        "diff": _describe(change),
        "may_decide": can_edit_mappings(request.user) and change.proposed_by_id != request.user.pk,
        "may_withdraw": change.proposed_by_id == request.user.pk,
        "fix_url": _fix_url(change.kind, change.applied_id)
        if change.state == MappingChange.State.APPLIED and change.operation != "delete"
        else None,
    }
    return render_screen(request, CHANGE, context)


@screen
@require_POST
def change_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    get_object_or_404(_changes(request), pk=pk)
    note = request.POST.get("note", "")
    services = {
        "approve": mapping_change_approve,
        "reject": mapping_change_reject,
        "withdraw": mapping_change_withdraw,
    }
    if action not in services:
        raise Http404("No such action.")
    try:
        change = services[action](change_id=pk, actor=request.user, note=note)
    except Refused as exc:
        raise Forbidden(str(exc)) from exc
    except (DomainError, ValidationError) as exc:
        messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("mapping-change", pk=pk)
    messages.success(request, f"Change #{pk}: {change.get_state_display().lower()}.")
    if change.state == MappingChange.State.APPLIED and change.operation != "delete":
        return redirect(_fix_url(change.kind, change.applied_id))
    return redirect("mapping-change", pk=pk)


# --- fix and replay -----------------------------------------------------------------------------


def _fix_url(kind: str, pk: int | None) -> str:
    return f"{reverse('mapping-fix')}?{urlencode({'kind': kind, 'pk': pk})}"


def _unblocked(request: HttpRequest, kind: str, pk: str) -> tuple[Any, QuerySet[ExceptionCase]]:
    if kind not in KINDS or not pk.isdigit():
        raise Http404("No such mapping.")
    obj = get_object_or_404(_rows(request, kind), pk=int(pk))
    cond = unblocks(obj)
    cases = exceptions_visible_to(request.user).filter(state__in=ExceptionCase.ACTIVE)
    return obj, (cases.filter(cond) if cond is not None else cases.none())


@screen
@require_http_methods(["GET", "POST"])
def mapping_fix(request: HttpRequest) -> HttpResponse:
    """The open exceptions a saved mapping unblocks, and one button to replay them all."""
    data = request.POST if request.method == "POST" else request.GET
    kind, pk = data.get("kind", ""), data.get("pk", "")
    obj, cases = _unblocked(request, kind, pk)
    if request.method == "POST":
        if not can_replay(request.user):
            raise Forbidden("Only finance ops may replay journeys.")
        reason, error = required_reason(request, "these journeys are replayed")
        if error:
            messages.error(request, error)
        else:
            try:
                summary = journeys_replay_bulk(
                    journeys=cases.filter(journey__state="exception"),
                    actor=request.user,
                    reason=reason,
                )
            except Refused as exc:
                raise Forbidden(str(exc)) from exc
            except DomainError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request,
                    f"{len(summary.requeued)} replay{'s' if len(summary.requeued) != 1 else ''} "
                    f"queued, {len(summary.refused)} refused.",
                )
        return redirect(_fix_url(kind, obj.pk))
    page = paginate(request, cases.order_by("-created_at", "-id"))
    context = {
        "kind": kind,
        "label": LABELS[kind],
        "obj": obj,
        "page_obj": page,
        "count": page.paginator.count,
        "queue_url": f"{reverse('exception-list')}?"
        + urlencode({"root_cause": cases.values_list("root_cause", flat=True).first() or ""}),
    }
    return render_screen(request, FIX, context)
