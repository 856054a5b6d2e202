"""``python run.py check`` on a real database: clean data passes, tampered postings are named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from tests.integration.ledger_helpers import new_user, pay, top_up
from tests.support import DATA_KEY, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def _run_check(database_url: str, data_dir: Path, *extra: str
               ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "P2P_DATABASE_URL": database_url, "P2P_DATA_DIR": str(data_dir),
           "P2P_SECRET_KEY": SECRET_KEY, "P2P_DATA_KEY": DATA_KEY}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "check", *extra], env=env,
                          cwd=data_dir, capture_output=True, text=True, timeout=120, check=False)


async def run_check(database_url: str, data_dir: Path, *extra: str
                    ) -> subprocess.CompletedProcess[str]:
    """``run.py check`` in a real process, without blocking this test's event loop."""
    return await asyncio.to_thread(_run_check, database_url, data_dir, *extra)


async def test_check_passes_on_a_fresh_database(core, database_url, tmp_path):
    result = await run_check(database_url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 violation(s)" in result.stdout


async def test_check_names_a_posting_tampered_with_in_the_database(core, database_url, tmp_path):
    alice, bob = await new_user(core), await new_user(core)
    async with core.uow() as uow:
        await core.ledger.post(uow, top_up(alice, "100.00", "t-1"))
        paid = await core.ledger.post(uow, pay(alice, bob, "40.00", "t-2"))
        await uow.commit()
    assert (await run_check(database_url, tmp_path)).returncode == 0

    async with core.uow() as uow:
        # A hand edit by someone with database access: the immutability trigger must go first.
        if uow.dialect == "sqlite":
            await uow.conn.execute(text("DROP TRIGGER ledger_postings_no_update"))
        else:
            await uow.conn.execute(
                text("DROP TRIGGER ledger_postings_immutable ON ledger_postings"))
        await uow.conn.execute(
            text("UPDATE ledger_postings SET amount = amount + 10000 "
                 "WHERE transfer_id = :t AND amount > 0"), {"t": paid.transfer_id})
        await uow.commit()

    try:
        result = await run_check(database_url, tmp_path)
    finally:
        await restore_trigger(core)
    assert result.returncode == 1
    assert f"ledger balanced: transfer {paid.transfer_id} postings sum to 1.0000" in result.stdout
    assert f"cached balances equal postings: account user:{alice}:available" in result.stdout


async def restore_trigger(core) -> None:
    """PostgreSQL test runs share one database between tests: put the trigger back."""
    if core.engine.dialect.name == "postgresql":
        async with core.uow() as uow:
            await uow.conn.execute(text(
                "CREATE TRIGGER ledger_postings_immutable BEFORE UPDATE OR DELETE ON "
                "ledger_postings FOR EACH ROW EXECUTE FUNCTION ledger_immutable()"))
            await uow.commit()


async def test_posted_entries_cannot_be_edited_or_deleted(core):
    alice = await new_user(core)
    async with core.uow() as uow:
        await core.ledger.post(uow, top_up(alice, "1.00", "i-1"))
        await uow.commit()
    for statement in ("UPDATE ledger_postings SET amount = 1", "DELETE FROM ledger_transfers"):
        async with core.uow() as uow:
            try:
                await uow.conn.execute(text(statement))
            except Exception as exc:  # the driver's own error type differs per database
                assert "immutable" in str(exc)
            else:
                raise AssertionError(f"{statement} was allowed")


async def test_check_reconcile_lists_a_bank_payment_missing_from_the_ledger(core, database_url,
                                                                           tmp_path):
    from decimal import Decimal

    from core.domain.money import Money
    from tests.integration.accounts_helpers import onboard

    person = await onboard(core)
    async with core.uow() as uow:
        order = await core.wallet.request_top_up(uow, person.user_id,
                                                 Money.of(Decimal("100.00")), "k")
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        ref = (await core.wallet.order(uow, order.id)).bank_ref
    core.bank.deliver = None  # the bank's callback never reaches us
    await core.bank.settle(ref, succeeded=True)
    day = core.clock.today().isoformat()
    result = await run_check(database_url, tmp_path, "--reconcile", day)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"reconcile {day}: missing_in_ledger: order {order.id}" in result.stdout


async def test_check_names_users_money_that_custody_cash_does_not_cover(core, database_url,
                                                                       tmp_path):
    from core.ledger import Transfer
    from tests.integration.ledger_helpers import cny

    alice = await new_user(core)
    async with core.uow() as uow:
        await core.ledger.post(uow, top_up(alice, "100.00", "t-1"))
        # a gift booked against a clearing account (which may go negative): money in a
        # wallet that never reached the bank
        await core.ledger.open_account(uow, "platform:clearing", "clearing")
        await core.ledger.post(uow, Transfer.simple(
            "gift", "reward", debit_account="platform:clearing",
            credit_account=f"user:{alice}:available", amount=cny("50.00")))
        await uow.commit()
    result = await run_check(database_url, tmp_path)
    assert result.returncode == 1
    assert ("custody covers every wallet: custody cash 100.0000 does not cover users' money "
            "150.0000") in result.stdout
