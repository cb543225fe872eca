"""The demo month goes through the real webhook and engine with the exceptions it promises."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import call_command

from connectors.stripe.demo import demo_events
from sync.models import ExceptionCase, InboundEvent, JournalEntry, Journey, LegalEntity
from tests.conftest import drain, emulator_records
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_sets_up_two_entities(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    assert "0 rows created" in capsys.readouterr().out.splitlines()[-1]
    assert dict(LegalEntity.objects.values_list("code", "functional_currency")) == {
        "us-inc": "USD",
        "eu-bv": "EUR",
    }


def test_demo_month_posts_clean_invoices_and_queues_the_broken_ones(client, netsuite):
    call_command("seed_demo")
    events = demo_events()
    assert all(post_signed(client, e).status_code == 200 for e in events)
    drain()

    assert InboundEvent.objects.count() == len(events) == 36
    invoices = Journey.objects.filter(journey_type="invoice_to_ledger")
    assert Counter(invoices.values_list("state", flat=True)) == {
        Journey.State.COMPLETED: 8,
        Journey.State.EXCEPTION: 6,
    }
    customers = Journey.objects.filter(journey_type="customer_sync")
    # The two customers without a usable entity stop at customer_sync too.
    assert Counter(customers.values_list("state", flat=True)) == {
        Journey.State.COMPLETED: 9,
        Journey.State.EXCEPTION: 2,
    }
    invoice_cases = ExceptionCase.objects.filter(journey__journey_type="invoice_to_ledger")
    assert Counter(invoice_cases.values_list("category", flat=True)) == {
        "unmapped_product": 2,
        "invalid_tax_jurisdiction": 2,
        "missing_entity_mapping": 1,
        "customer_not_linked": 1,
    }
    posted = JournalEntry.objects.filter(state=JournalEntry.State.POSTED)
    assert sorted(e.external_id for e in posted) == sorted(
        r["externalId"] for r in emulator_records(netsuite)
    )
    assert {e.legal_entity.code for e in posted} == {"us-inc", "eu-bv"}
    for entry in posted:
        lines = list(entry.lines.all())
        assert sum(ln.debit_minor for ln in lines) == sum(ln.credit_minor for ln in lines) > 0
