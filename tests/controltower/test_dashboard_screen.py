"""The SLA dashboard: its figures are the database's, each links to a list showing exactly
those records, it reads in a fixed number of queries and it respects entity limits."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from sync.models import ExceptionCase, Journey
from tests.factories import (
    ExceptionCaseFactory,
    JourneyFactory,
    LegalEntityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def books():
    """Journeys of two types in two entities, in every state that shows on the dashboard."""
    now = timezone.now()
    us = LegalEntityFactory()
    uk = LegalEntityFactory(code="uk-ltd", name="Acme UK Ltd", functional_currency="GBP")
    for i in range(6):
        entity = us if i % 2 else uk
        JourneyFactory(
            legal_entity=entity,
            state="completed",
            business_at=now - dt.timedelta(minutes=20),
            completed_at=now - dt.timedelta(minutes=i),  # the last ones are late
        )
    JourneyFactory.create_batch(
        3, legal_entity=us, journey_type="payment_to_ledger", state="running"
    )
    JourneyFactory(legal_entity=uk, state="waiting", sla_state="at_risk")
    JourneyFactory(legal_entity=us, state="retrying", sla_state="breached")
    for hours in (0, 2, 30):
        case = ExceptionCaseFactory(journey__legal_entity=us)
        ExceptionCase.objects.filter(pk=case.pk).update(created_at=now - dt.timedelta(hours=hours))
    return us, uk


def _cell(html: str, row: tuple[str, str] | None, fig: str) -> tuple[str, str]:
    """(number, href) of one figure: in the row of (type, entity), or in the totals."""
    if row is None:
        scope = html.split("<tfoot>")[1]
    else:
        start = html.index(f'data-type="{row[0]}" data-entity="{row[1]}"')
        scope = html[start : html.index("</tr>", start)]
    m = re.search(rf'<a href="([^"]+)" data-fig="{fig}">([^<]+)</a>', scope)
    assert m, f"no {fig} in {row}"
    return m.group(2).replace(",", ""), htmllib.unescape(m.group(1))


def _listed(client, href: str) -> int:
    page = client.get(href).content.decode()
    m = re.search(r"<strong>([\d,]+)</strong> (journey|exception)", page)
    assert m, href
    return int(m.group(1).replace(",", ""))


def test_manager_sees_figures_that_are_the_database(client, manager, books):
    us, _ = books
    client.force_login(manager)
    html = client.get(reverse("home")).content.decode()
    assert _cell(html, None, "started")[0] == str(Journey.objects.count())
    assert _cell(html, None, "in_flight")[0] == str(
        Journey.objects.filter(state__in=Journey.ACTIVE).count()
    )
    assert _cell(html, None, "in_exception")[0] == str(
        Journey.objects.filter(state="exception").count()
    )
    on_time = sum(j.completed_at <= j.sla_due_at for j in Journey.objects.filter(state="completed"))
    completed = Journey.objects.filter(state="completed").count()
    assert _cell(html, None, "compliance")[0] == f"{100 * on_time / completed:.1f}%"
    assert _cell(html, ("payment_to_ledger", us.code), "in_flight")[0] == "3"
    assert _cell(html, None, "breached")[0] == "1"
    assert _cell(html, None, "at_risk")[0] == "1"
    assert _cell(html, None, "age-lt1h")[0] == "1"
    assert _cell(html, None, "age-1d-3d")[0] == "1"
    assert 'role="group"' in html and "<svg" in html  # the charts


@pytest.mark.parametrize(
    "fig",
    [
        "started",
        "completed",
        "late",
        "in_flight",
        "in_exception",
        "at_risk",
        "breached",
        "age-lt1h",
        "age-1h-4h",
        "age-1d-3d",
    ],
)
def test_every_figure_links_to_a_list_of_exactly_that_many(client, manager, books, fig):
    us, _ = books
    client.force_login(manager)
    html = client.get(reverse("home")).content.decode()
    number, href = _cell(html, None, fig)
    assert _listed(client, href) == int(number)
    row_number, row_href = _cell(html, ("invoice_to_ledger", us.code), fig)
    assert _listed(client, row_href) == int(row_number)


def test_dashboard_reads_in_a_fixed_number_of_queries(
    client, manager, books, django_assert_max_num_queries
):
    client.force_login(manager)
    client.get(reverse("home"))
    # session, user, roles+limit, open exceptions and alerts in the nav, entities, then the
    # four figure reads (day stats, pending deltas, gauges, ageing x2) and the savepoint pair
    with django_assert_max_num_queries(13):
        small = client.get(reverse("home"))
    JourneyFactory.create_batch(40, legal_entity=books[0], state="running")
    with django_assert_max_num_queries(13):
        large = client.get(reverse("home"))
    assert _cell(large.content.decode(), None, "in_flight")[0] == str(
        int(_cell(small.content.decode(), None, "in_flight")[0]) + 40
    )


def test_htmx_poll_gets_only_the_board(client, manager, books):
    client.force_login(manager)
    response = client.get(reverse("home"), headers=HX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="board"')
    assert "<html" not in body and 'hx-trigger="every 30s"' in body


def test_filters_narrow_by_entity_type_and_period(client, manager, books):
    us, uk = books
    client.force_login(manager)
    html = client.get(reverse("home"), {"entity": "uk-ltd", "days": "1"}).content.decode()
    assert f'data-entity="{us.code}"' not in html
    assert _cell(html, None, "started")[0] == str(Journey.objects.filter(legal_entity=uk).count())
    typed = client.get(reverse("home"), {"journey_type": "payment_to_ledger"}).content.decode()
    assert _cell(typed, None, "in_flight")[0] == "3"
    bad = client.get(reverse("home"), {"entity": "nope", "days": "12"}).content.decode()
    assert "No legal entity has the code “nope”" in bad
    assert "Choose a period of 1, 7, 30, 90 days." in bad
    assert "Nothing in this period" in bad
    words = client.get(reverse("home"), {"days": "a week"})  # not a number: the message, not a 500
    assert words.status_code == 200
    assert "Choose a period of 1, 7, 30, 90 days." in words.content.decode()


def test_entity_limited_manager_sees_only_their_entity(client, books):
    us, uk = books
    limited = UserFactory(username="ukonly", roles=["manager"], entities=[uk])
    client.force_login(limited)
    html = client.get(reverse("home")).content.decode()
    assert f'data-entity="{us.code}"' not in html and 'data-entity="uk-ltd"' in html
    assert _cell(html, None, "started")[0] == str(Journey.objects.filter(legal_entity=uk).count())
    assert '<option value="us-inc"' not in html
    other = client.get(reverse("home"), {"entity": "us-inc"}).content.decode()
    assert "No legal entity has the code “us-inc”" in other
    assert 'data-entity="us-inc"' not in other
