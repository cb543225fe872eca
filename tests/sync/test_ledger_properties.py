"""Properties over random histories, through the real engine and NetSuite emulator.

Random invoices (ratable over random periods, usage, prorations), credit notes before and
after payment, payments (partial, full, over), recognition runs and voids, in random order.
After every history: every entry balances in both currencies and never mixes entities; the
deferred revenue roll-forward closes every month; and re-running every step of every journey (as a
duplicated or lost-then-swept task would) changes no total and posts nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from connectors.netsuite.emulator import start_emulator, stop_emulator
from connectors.stripe import emulator as se
from sync.accounting.schedules import next_month
from sync.models import GLAccount, JournalEntry, JournalLine, Journey, RevenueType, Step
from sync.reports import deferred_revenue_rollforward
from sync.services.recognition import recognition_run
from tests.conftest import drain, emulator_records
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import post_signed

START = dt.date(2026, 1, 1)


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


line_st = st.one_of(
    st.builds(
        lambda amount, start, days: ("ratable", amount, start, days),
        st.integers(1, 5_000_00),
        st.integers(0, 150),
        st.integers(1, 200),
    ),
    st.builds(lambda amount: ("usage", amount, 0, 0), st.integers(1, 900_00)),
    st.builds(  # a proration credit inside another line's period
        lambda amount, start, days: ("credit", -amount, start, days),
        st.integers(1, 50_00),
        st.integers(0, 150),
        st.integers(1, 30),
    ),
)
op_st = st.one_of(
    st.tuples(st.just("invoice"), st.lists(line_st, min_size=1, max_size=3), st.booleans()),
    st.tuples(
        st.just("credit"),
        st.integers(0, 9),
        st.sampled_from([0.1, 0.25, 0.5]),
        st.sampled_from(["pre_payment", "post_payment"]),
    ),
    st.tuples(st.just("recognize"), st.integers(0, 9)),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("pay"), st.integers(0, 9), st.sampled_from([0.3, 1.0, 1.2])),
    st.tuples(st.just("pay"), st.integers(0, 9), st.just(1.0)),  # paying in full is common
)


class LedgerProperties(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile

        cls.tmp = tempfile.mkdtemp()
        cls.server, cls.url = start_emulator(f"{cls.tmp}/ns.sqlite3", token="t")

    @classmethod
    def tearDownClass(cls):
        stop_emulator(cls.server)
        super().tearDownClass()

    def _setup(self):
        httpx.post(f"{self.url}/_emulator/reset", timeout=5).raise_for_status()
        from django.conf import settings as dj

        dj.NETSUITE_BASE_URL, dj.NETSUITE_TOKEN = self.url, "t"
        self.ledger = make_ledger()
        add_cash_accounts(self.ledger)
        map_product("price_sub")
        map_product("price_use", RevenueType.POINT_IN_TIME, code="USAGE")
        map_tax(self.ledger, "txr_us_8")
        link_customer(self.ledger, "cus_acme")
        self.invoices: list[dict] = []

    def _invoice(self, lines, taxed):
        specs = []
        for kind, amount, start, days in lines:
            begin = START + dt.timedelta(days=start)
            price = "price_use" if kind == "usage" else "price_sub"
            specs.append(
                se.LineSpec(
                    amount_minor=amount,
                    price_id=price,
                    period_start=ts(begin),
                    period_end=ts(begin + dt.timedelta(days=days or 1)),
                    taxes=(se.TaxSpec(rate_id="txr_us_8", percentage="8"),)
                    if taxed and amount > 0
                    else (),
                )
            )
        n = len(self.invoices)
        obj = se.make_invoice(
            "cus_acme",
            specs,
            currency="usd",
            invoice_id=f"in_p{n}",
            created=ts(START),
            finalized_at=ts(START),
        )
        self.invoices.append(obj)
        post_signed(self.client, se.make_event("invoice.finalized", obj))

    def _credit(self, index, share, timing):
        if not self.invoices:
            return
        obj = self.invoices[index % len(self.invoices)]
        first = obj["lines"]["data"][0]
        if first["amount"] <= 0:
            return
        amount = max(1, int(first["amount"] * share))
        note = se.make_credit_note(obj, [amount], timing=timing)
        post_signed(self.client, se.make_event("credit_note.created", note))

    def _pay(self, index, share):
        obj = self.invoices[index % len(self.invoices)]
        if obj["total"] <= 0:
            return
        charge = se.make_charge(
            obj, amount=max(1, int(obj["total"] * share)), created=ts(START + dt.timedelta(days=3))
        )
        post_signed(
            self.client, se.make_event("invoice_payment.paid", se.make_invoice_payment(obj, charge))
        )
        post_signed(self.client, se.make_event("charge.succeeded", charge))

    def _totals(self):
        per_account = Counter()
        for ln in JournalLine.objects.select_related("account"):
            per_account[ln.account.number] += ln.debit_minor - ln.credit_minor
            per_account["f" + ln.account.number] += (
                ln.functional_debit_minor - ln.functional_credit_minor
            )
        return per_account, JournalEntry.objects.count(), len(emulator_records(self.url))

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(ops=st.lists(op_st, min_size=1, max_size=7))
    def test_random_histories_keep_the_books_straight(self, ops):
        self._setup()
        for op in ops:
            if op[0] == "invoice":
                self._invoice(op[1], op[2])
            elif op[0] == "credit":
                self._credit(op[1], op[2], op[3])
            elif op[0] == "recognize":
                month = START
                for _ in range(op[1]):
                    month = next_month(month)
                recognition_run(entity=self.ledger.entity, period=month)
            elif op[0] == "pay" and self.invoices:
                self._pay(op[1], op[2])
            elif op[0] == "void" and self.invoices:
                obj = dict(self.invoices[op[1] % len(self.invoices)], status="void")
                post_signed(self.client, se.make_event("invoice.voided", obj))
            drain()

        entity_accounts = set(
            GLAccount.objects.filter(legal_entity=self.ledger.entity).values_list("pk", flat=True)
        )
        for entry in JournalEntry.objects.prefetch_related("lines"):
            lines = list(entry.lines.all())
            assert sum(ln.debit_minor for ln in lines) == sum(ln.credit_minor for ln in lines)
            assert sum(ln.functional_debit_minor for ln in lines) == sum(
                ln.functional_credit_minor for ln in lines
            )
            assert {ln.account_id for ln in lines} <= entity_accounts
            assert all(ln.debit_minor >= 0 and ln.credit_minor >= 0 for ln in lines)
        month = START
        for _ in range(12):
            rf = deferred_revenue_rollforward(entity=self.ledger.entity, period=month)
            assert rf.totals.break_minor == 0, (month, rf.totals)
            month = next_month(month)

        before = self._totals()
        done = Journey.objects.filter(state=Journey.State.COMPLETED)
        Step.objects.filter(journey__in=done).update(state=Step.State.PENDING)
        done.update(state=Journey.State.RUNNING)
        drain()
        assert self._totals() == before
        assert all(r["write_count"] == 1 for r in emulator_records(self.url))
