"""Ledger reports on screen: the trial balance and the deferred revenue roll-forward of an entity
and month, each figure a link to the journal lines behind it. Read-only, for every role.

The figures come from ``sync.reports``; these views only read the query string, call it and
render. A bad entity code, period or column shows the message (with a 400) instead of a report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied as Forbidden
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from controltower.views.base import PAGE_SIZE, render_screen, screen
from sync import reports
from sync.errors import DomainError
from sync.errors import PermissionDenied as Refused
from sync.models import GLAccount, LegalEntity
from sync.services.periods import period_close
from sync.services.recognition import recognition_run

INDEX = "controltower/reports/index.html"
LINES = "controltower/reports/lines.html"

COLUMN_LABELS = {
    "opening": "Opening balance",
    "debits": "Debits",
    "credits": "Credits",
    "closing": "Closing balance",
    "billed": "Billed",
    "recognized": "Recognized",
    "credited": "Credited",
    "actual_closing": "Closing on the accounts",
    "break": "Break",
}
REPORT_LABELS = {
    reports.TRIAL_BALANCE: "Trial balance",
    reports.DEFERRED_REVENUE: "Deferred revenue roll-forward",
}


@dataclass
class ReportQuery:
    """Entity and month read from the query string, with any errors to show."""

    entities: list[LegalEntity]
    entity: LegalEntity | None = None
    period: dt.date | None = None
    period_value: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def base_query(self) -> str:
        """``entity=...&period=YYYY-MM`` for the drill-down links."""
        if self.entity is None or self.period is None:
            return ""
        return urlencode({"entity": self.entity.code, "period": self.period_value})


def _report_query(request: HttpRequest, *, defaults: bool) -> ReportQuery:
    """Read ``entity`` and ``period``; on the index a first visit gets the first active entity
    and the current month."""
    q = ReportQuery(entities=list(reports.report_entities(request.user)))
    code = request.GET.get("entity", "").strip()
    if code:
        q.entity = next((e for e in q.entities if e.code == code), None)
        if q.entity is None:
            q.errors.append(f"No legal entity has the code “{code}”.")
    elif defaults:
        q.entity = next((e for e in q.entities if e.is_active), None) or next(
            iter(q.entities), None
        )
    else:
        q.errors.append("Choose a legal entity.")

    value = request.GET.get("period", "").strip()
    if not value and defaults:
        value = timezone.localdate().strftime("%Y-%m")
    try:
        q.period = reports.parse_period(value)
    except reports.ReportError as exc:
        q.errors.append(str(exc))
    else:
        q.period_value = q.period.strftime("%Y-%m")
    q.period_value = q.period_value or value
    return q


@screen
@require_GET
def report_index(request: HttpRequest) -> HttpResponse:
    q = _report_query(request, defaults=True)
    context: dict = {"q": q, "tb": None, "rf": None}
    if q.entity is not None and q.period is not None and not q.errors:
        context["tb"] = reports.trial_balance(entity=q.entity, period=q.period)
        context["rf"] = reports.deferred_revenue_rollforward(entity=q.entity, period=q.period)
    status = 400 if q.errors else 200
    return render_screen(request, INDEX, context, partial="report", status=status)


def _lines_params(
    query: QueryDict, q: ReportQuery
) -> tuple[str, str | None, GLAccount | None, str | None]:
    """Column, report, account and product of a drill-down link; problems go to ``q.errors``."""
    column = query.get("column", "")
    product = query.get("product")  # present and empty: the lines without a product code
    report = query.get("report") or None
    if column not in reports.COLUMNS:
        q.errors.append(f"Unknown column “{column}”.")
        return column, report, None, product
    report = report or reports.infer_report(column=column, product=product)
    if report not in reports.REPORTS:
        q.errors.append(f"Unknown report “{report}”.")
    elif column not in (
        reports.TRIAL_BALANCE_COLUMNS
        if report == reports.TRIAL_BALANCE
        else reports.ROLLFORWARD_COLUMNS
    ):
        q.errors.append(f"The {REPORT_LABELS[report].lower()} has no column “{column}”.")
    account = None
    raw_account = query.get("account", "").strip()
    if raw_account and q.entity is not None:
        if raw_account.isdigit():
            account = (
                GLAccount.objects.filter(pk=int(raw_account), legal_entity=q.entity)
                .order_by()
                .first()
            )
        if account is None:
            q.errors.append(f"No GL account {raw_account} in entity {q.entity.code}.")
    return column, report, account, product


@screen
@require_GET
def report_lines(request: HttpRequest) -> HttpResponse:
    """The posted lines behind one figure, with their total (which is the figure)."""
    q = _report_query(request, defaults=False)
    column, report, account, product = _lines_params(request.GET, q)
    context: dict = {
        "q": q,
        "column": column,
        "column_label": COLUMN_LABELS.get(column, column),
        "report": report,
        "report_label": REPORT_LABELS.get(report or "", ""),
        "account": account,
        "product": product,
        "page_obj": None,
        "summary": None,
    }
    if not q.errors:
        lines = reports.lines_behind(
            entity=q.entity,
            period=q.period,
            account=account,
            product=product,
            column=column,
            report=report,
        )
        summary = reports.lines_summary(lines)
        paginator = Paginator(lines, PAGE_SIZE)
        paginator.count = summary.count  # known already: spare the COUNT query
        context["summary"] = summary
        context["page_obj"] = paginator.get_page(request.GET.get("page"))
    status = 400 if q.errors else 200
    return render_screen(request, LINES, context, partial="results", status=status)


@screen
@require_POST
def report_period_action(request: HttpRequest) -> HttpResponse:
    """Finance ops run revenue recognition for, or close, the month on screen; the result
    comes back as a message on the report page."""
    code = request.POST.get("entity", "")
    value = request.POST.get("period", "")
    entity = next((e for e in reports.report_entities(request.user) if e.code == code), None)
    back = f"{reverse('report-index')}?{urlencode({'entity': code, 'period': value})}"
    try:
        if entity is None:
            raise DomainError(f"No legal entity has the code “{code}”.")
        try:
            period = reports.parse_period(value)
        except reports.ReportError as exc:
            raise DomainError(str(exc)) from exc
        reason = request.POST.get("reason", "").strip()[:500]
        if request.POST.get("action") == "close":
            period_close(entity=entity, period=period, actor=request.user, reason=reason)
            messages.success(request, f"{entity.code} {value} is closed.")
        else:
            result = recognition_run(
                entity=entity, period=period, actor=request.user, reason=reason
            )
            if result.nothing_due:
                messages.info(
                    request,
                    f"Nothing is due for recognition in {entity.code} up to "
                    f"{value}; nothing was posted.",
                )
            else:
                started = ", ".join(j.business_key for j in result.journeys) or "none"
                in_flight = ", ".join(result.skipped_in_flight)
                messages.success(
                    request,
                    f"Recognition started: {started}."
                    + (f" Still running: {in_flight}." if in_flight else ""),
                )
    except Refused as exc:
        raise Forbidden(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect(back)
