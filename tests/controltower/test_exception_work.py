"""Finance ops work the queue: assign, resolve, ignore, tag a selection; filter and sort; see
the open cases grouped by root cause with the fix one click away."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sync.models import AuditEntry, ExceptionCase, Journey
from sync.root_causes import describe, root_cause_of
from tests.factories import ExceptionCaseFactory, JourneyFactory, LegalEntityFactory, UserFactory

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
QUEUE = "/exceptions/"


def _case(price: str = "price_a", **kw) -> ExceptionCase:
    context = {"missing": {"unmapped_product": [price]}, "entity": "us-inc"}
    return ExceptionCaseFactory(
        context=context, root_cause=root_cause_of("unmapped_product", context), **kw
    )


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr id="exception-(\d+)"', html)


def _bulk(client, action: str, cases, **extra):
    data = {"action": action, "case": [c.pk for c in cases], **extra}
    return client.post(QUEUE, data, headers=HX)


@pytest.fixture
def cases(db):
    LegalEntityFactory()
    return [_case("price_a") for _ in range(3)] + [_case("price_b") for _ in range(2)]


def test_root_cause_keys_and_words():
    ctx = {"missing": {"unmapped_product": ["price_z", "price_a"]}, "entity": "us-inc"}
    assert root_cause_of("unmapped_product", ctx) == "unmapped_product:price_a"
    tax = {"missing": {"invalid_tax_jurisdiction": ["txr_1"]}, "entity": "uk-ltd"}
    assert root_cause_of("invalid_tax_jurisdiction", tax) == "invalid_tax_jurisdiction:uk-ltd/txr_1"
    fx = {"pair": "EUR/USD", "date": "2026-11-02"}
    assert root_cause_of("missing_fx_rate", fx) == "missing_fx_rate:EUR/USD@2026-11-02"
    assert root_cause_of("customer_not_linked", {"customer": "cus_1"}) == (
        "customer_not_linked:cus_1"
    )
    assert root_cause_of("internal_error", {}) == "internal_error"
    cause = describe("missing_fx_rate:EUR/USD@2026-11-02")
    assert cause.blocked == "the missing EUR/USD rate on 2026-11-02"
    assert dict(cause.fix_fields) == {
        "base_currency": "EUR",
        "quote_currency": "USD",
        "rate_date": "2026-11-02",
    }


def test_assign_moves_cases_in_progress_and_back(client, finance_ops, cases):
    other = UserFactory(username="olga", roles=["finance_ops"])
    client.force_login(finance_ops)
    response = _bulk(client, "assign", cases[:2], assignee="olga")
    body = response.content.decode()
    assert "2 of 2 done." in body
    assert body.count('hx-swap-oob="true"') >= 2  # the rows re-rendered in place
    assert set(ExceptionCase.objects.filter(assignee=other).values_list("pk", flat=True)) == {
        cases[0].pk,
        cases[1].pk,
    }
    assert ExceptionCase.objects.get(pk=cases[0].pk).state == "in_progress"
    assert AuditEntry.objects.filter(action="exception.assign").count() == 2
    _bulk(client, "assign", cases[:1], assignee="-")
    case = ExceptionCase.objects.get(pk=cases[0].pk)
    assert (case.assignee, case.state) == (None, "open")


def test_assign_refuses_someone_outside_finance_ops(client, finance_ops, manager, cases):
    client.force_login(finance_ops)
    body = _bulk(client, "assign", cases[:1], assignee="mona").content.decode()
    assert "Choose who to assign to" in body
    assert not ExceptionCase.objects.filter(assignee__isnull=False).exists()


def test_resolve_needs_a_reason_and_then_cancels_the_journey(client, finance_ops, cases):
    client.force_login(finance_ops)
    body = _bulk(client, "resolve", cases[:2]).content.decode()
    assert "the reason is required" in body
    assert ExceptionCase.objects.filter(state="open").count() == 5
    body = _bulk(client, "resolve", cases[:2], reason="posted by hand in NetSuite").content.decode()
    assert "2 of 2 done." in body
    for case in ExceptionCase.objects.filter(pk__in=[cases[0].pk, cases[1].pk]):
        assert case.state == "resolved"
        assert case.closed_by == finance_ops
        assert "posted by hand in NetSuite" in case.resolution_note
        assert case.journey.state == Journey.State.CANCELLED
    audit = AuditEntry.objects.filter(
        action="exception.resolve", reason="posted by hand in NetSuite"
    )
    assert audit.count() == 2


def test_ignore_closes_as_ignored_and_a_closed_case_is_refused_again(client, finance_ops, cases):
    client.force_login(finance_ops)
    _bulk(client, "ignore", cases[:1], reason="test data")
    case = ExceptionCase.objects.get(pk=cases[0].pk)
    assert case.state == "ignored" and case.journey.state == "cancelled"
    body = _bulk(client, "resolve", cases[:1], reason="again").content.decode()
    assert "0 of 1 done. 1 refused (see the rows)." in body and "Already ignored." in body


def test_a_case_whose_journey_moved_on_is_closed_without_touching_the_journey(
    client, finance_ops, cases
):
    Journey.objects.filter(pk=cases[0].journey_id).update(state="running")
    client.force_login(finance_ops)
    _bulk(client, "resolve", cases[:1], reason="stale case")
    assert ExceptionCase.objects.get(pk=cases[0].pk).state == "resolved"
    assert Journey.objects.get(pk=cases[0].journey_id).state == "running"


def test_tags_are_added_removed_and_filterable(client, finance_ops, cases):
    client.force_login(finance_ops)
    _bulk(client, "tag", cases[:2], tag="quarter-end, sales")
    assert set(ExceptionCase.objects.get(pk=cases[0].pk).tags.values_list("name", flat=True)) == {
        "quarter-end",
        "sales",
    }
    listed = client.get(QUEUE, {"tag": "quarter-end"}).content.decode()
    assert sorted(_rows(listed)) == sorted(str(c.pk) for c in cases[:2])
    _bulk(client, "untag", cases[:1], tag="sales")
    assert list(ExceptionCase.objects.get(pk=cases[0].pk).tags.values_list("name", flat=True)) == [
        "quarter-end"
    ]
    bad = _bulk(client, "tag", cases[:1], tag="Not A Tag!").content.decode()
    assert "is not a tag" in bad


@pytest.mark.parametrize("persona", ["manager", "auditor", "integration_admin"])
def test_other_roles_cannot_work_exceptions(client, request, cases, persona):
    client.force_login(request.getfixturevalue(persona))
    for action, extra in [
        ("assign", {"assignee": "fiona"}),
        ("resolve", {"reason": "r"}),
        ("ignore", {"reason": "r"}),
        ("tag", {"tag": "x"}),
    ]:
        assert _bulk(client, action, cases[:1], **extra).status_code == 403
    case = ExceptionCase.objects.get(pk=cases[0].pk)
    assert (case.state, case.assignee, case.tags.count()) == ("open", None, 0)


def test_filters_by_source_assignee_and_sort(client, finance_ops, cases):
    olga = UserFactory(username="olga", roles=["finance_ops"])
    ExceptionCase.objects.filter(pk=cases[0].pk).update(assignee=olga)
    ExceptionCase.objects.filter(pk=cases[1].pk).update(assignee=finance_ops)
    Journey.objects.filter(pk=cases[2].journey_id).update(source_system="chargebee")
    client.force_login(finance_ops)
    assert _rows(client.get(QUEUE, {"assignee": "olga"}).content.decode()) == [str(cases[0].pk)]
    assert _rows(client.get(QUEUE, {"assignee": "me"}).content.decode()) == [str(cases[1].pk)]
    assert len(_rows(client.get(QUEUE, {"assignee": "none"}).content.decode())) == 3
    assert _rows(client.get(QUEUE, {"source_system": "chargebee"}).content.decode()) == [
        str(cases[2].pk)
    ]
    oldest = _rows(client.get(QUEUE, {"o": "created"}).content.decode())
    newest = _rows(client.get(QUEUE, {"o": "-created"}).content.decode())
    assert oldest == list(reversed(newest)) and oldest[0] == str(cases[0].pk)


def test_causes_groups_the_open_cases_with_the_fix(
    client, finance_ops, cases, django_assert_max_num_queries
):
    ExceptionCase.objects.filter(pk=cases[4].pk).update(state="resolved")
    client.force_login(finance_ops)
    client.get(reverse("exception-causes"))
    with django_assert_max_num_queries(9):
        html = client.get(reverse("exception-causes")).content.decode()
    groups = re.findall(r'data-root-cause="([^"]+)"', html)
    assert groups == ["unmapped_product:price_a", "unmapped_product:price_b"]
    assert "3 exceptions blocked by the missing product mapping for price_a" in html
    assert "1 exception blocked by the missing product mapping for price_b" in html
    assert "/mappings/product_mapping/new/?source_ref=price_a" in html
    queue = client.get(QUEUE, {"root_cause": "unmapped_product:price_a"}).content.decode()
    assert sorted(_rows(queue)) == sorted(str(c.pk) for c in cases[:3])


def test_causes_respect_the_entity_limit(client, cases):
    uk = LegalEntityFactory(code="uk-ltd", functional_currency="GBP")
    limited = UserFactory(roles=["finance_ops"], entities=[uk])
    client.force_login(limited)
    html = client.get(reverse("exception-causes")).content.decode()
    assert "No open exceptions." in html and "price_a" not in html
    body = _bulk(client, "resolve", cases[:1], reason="r").content.decode()
    assert "0 of 1 done. 1 not found." in body
    assert ExceptionCase.objects.get(pk=cases[0].pk).state == "open"


def test_engine_stores_the_root_cause_of_a_real_stuck_invoice(finance_ops, netsuite):
    from tests.controltower.test_screens import stuck_on_unmapped_product
    from tests.factories import link_customer, make_ledger

    link_customer(make_ledger(), "cus_acme")
    stuck = stuck_on_unmapped_product()
    stuck.case.refresh_from_db()
    assert stuck.case.root_cause == "unmapped_product:price_platform"


def test_queue_with_tags_has_no_n_plus_one(
    client, finance_ops, cases, django_assert_max_num_queries
):
    client.force_login(finance_ops)
    _bulk(client, "tag", cases, tag="a b")
    for _ in range(10):
        _case("price_c")
    client.get(QUEUE)
    with django_assert_max_num_queries(11):
        html = client.get(QUEUE).content.decode()
    assert len(_rows(html)) == 15 and html.count('class="tag"') == 10
    assert JourneyFactory._meta.model.objects.count() == 15
