"""Property-based: random programs of transfers, retries, overdrafts and reversals keep every
invariant of ``run.py check`` after every step, on the database of the test run."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain.errors import AlreadyReversed, InsufficientFunds, LedgerError
from core.invariants import run_checks
from core.ledger import user_account
from tests.integration.ledger_helpers import new_user, pay, top_up
from tests.support import make_core

USERS = 4
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500.00"), places=2)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("top_up"), st.integers(0, USERS - 1), amounts),
        st.tuples(st.just("pay"), st.integers(0, USERS - 1), st.integers(0, USERS - 1), amounts),
        st.tuples(st.just("retry"), st.integers(0, 1_000)),
        st.tuples(st.just("reverse"), st.integers(0, 1_000)),
        st.tuples(st.just("batch"), st.lists(
            st.tuples(st.integers(0, USERS - 1), st.integers(0, USERS - 1), amounts),
            min_size=1, max_size=6)),
    ),
    min_size=1, max_size=25,
)


async def run_program(database_url: str, clock, data_dir: Path, program: list) -> None:
    core = await make_core(database_url, clock, data_dir)
    try:
        people = [await new_user(core) for _ in range(USERS)]
        model = dict.fromkeys(people, Decimal("0.00"))
        posted: list[tuple[str, object, dict[int, Decimal]]] = []  # key, transfer, its effect
        reversed_ids: set[str] = set()
        for n, step in enumerate(program):
            async with core.uow() as uow:
                kind = step[0]
                if kind == "top_up":
                    _, who, amount = step
                    t = top_up(people[who], str(amount), f"s{n}")
                    r = await core.ledger.post(uow, t)
                    model[people[who]] += amount
                    posted.append((r.transfer_id, t, {people[who]: amount}))
                elif kind == "pay":
                    _, a, b, amount = step
                    t = pay(people[a], people[b], str(amount), f"s{n}")
                    try:
                        r = await core.ledger.post(uow, t)
                    except InsufficientFunds:
                        assert model[people[a]] < amount
                    else:
                        model[people[a]] -= amount
                        model[people[b]] += amount
                        posted.append((r.transfer_id, t, {people[a]: -amount, people[b]: amount}
                                       if a != b else {}))
                elif kind == "retry" and posted:
                    transfer_id, t, _ = posted[step[1] % len(posted)]
                    r = await core.ledger.post(uow, t)
                    assert (r.status, r.transfer_id) == ("duplicate", transfer_id)
                elif kind == "reverse" and posted:
                    transfer_id, _, effect = posted[step[1] % len(posted)]
                    try:
                        await core.ledger.reverse(uow, transfer_id, f"rev-{transfer_id}-{n}")
                    except AlreadyReversed:
                        assert transfer_id in reversed_ids
                    except InsufficientFunds:
                        assert any(model[u] + (-d) < 0 for u, d in effect.items())
                    else:
                        assert transfer_id not in reversed_ids
                        reversed_ids.add(transfer_id)
                        for u, d in effect.items():
                            model[u] -= d
                elif kind == "batch":
                    batch = [pay(people[a], people[b], str(x), f"s{n}-{i}")
                             for i, (a, b, x) in enumerate(step[1])]
                    results = await core.ledger.post_many(uow, batch)
                    for (a, b, x), r in zip(step[1], results, strict=True):
                        if r.status == "applied":
                            model[people[a]] -= x
                            model[people[b]] += x
                        else:
                            assert isinstance(r.error, LedgerError)
                await uow.commit()
            async with core.uow(read_only=True) as uow:
                assert [str(v) for v in await run_checks(uow)] == []
                balances = await core.ledger.balances(
                    uow, [user_account(p, "available") for p in people])
            assert {p: balances[user_account(p, "available")].amount for p in people} == model
            assert all(v >= 0 for v in model.values())
    finally:
        await core.close()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(program=steps)
def test_random_ledger_programs_keep_every_invariant(test_database, clock, tmp_path, program):
    url = asyncio.run(test_database.fresh(tmp_path))
    asyncio.run(run_program(url, clock, tmp_path, program))
