"""The managers' review queues through the product's own app (create_app): loan applications,
KYC exceptions and anti-fraud flags, AML flags and collections tasks; roles, CSRF, paging,
filters, audit rows and masking."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from bots.console.review import setup_review
from bots.server import create_app
from bots.web.auth import STAFF
from core.adapters.tables import (
    audit_log,
    due_diligence_notes,
    loan_applications,
    loans,
    risk_flags,
    servicing_tasks,
)
from core.services.flags import raise_flag
from tests.integration import console_helpers
from tests.integration.accounts_helpers import register, verify
from tests.integration.console_helpers import FAST, HTML
from tests.integration.lending_helpers import apply, borrower, investor, strong_request
from tests.integration.servicing_helpers import active_loan, drain_wallet, run_day, schedule

JSON = {"Accept": "application/json"}
PAGES = ("/review/applications", "/review/kyc", "/review/aml", "/review/collections")


@pytest.fixture
async def app(core):
    app = create_app(core, close_core=False, background=False)
    if not any(r.resource and r.resource.canonical == "/review/applications"
               for r in app.router.routes()):
        setup_review(app, core)  # until bots/server.py mounts it
    app[STAFF].hasher = FAST
    return app


@pytest.fixture
async def client(app, aiohttp_client):
    return await aiohttp_client(app)


async def staff_member(app, core, name: str, role: str = "manager"):
    return await console_helpers.staff_member(app, core, name, role)


async def sign_in(client, name: str, page: str = "/review/applications") -> str:
    return await console_helpers.sign_in(client, name, page)


async def in_review(core, amount: str = "60000"):
    """A strong borrower asking for more than the policy approves alone: manual review."""
    person = await borrower(core)
    decision = await apply(core, person, strong_request(amount, months=12))
    assert decision.status == "review", decision
    return person, decision.application_id


async def application(core, application_id: int):
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(loan_applications).where(
            loan_applications.c.id == application_id))).one()


async def audit_rows(core, subject_kind: str, subject_id: int):
    a = audit_log.c
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(a.action, a.actor_kind, a.actor_id, a.details)
                .where(a.subject_kind == subject_kind, a.subject_id == str(subject_id))
                .order_by(a.id))).all()


async def test_an_agent_gets_403_on_every_queue_page_api_and_decision(app, core, client):
    await staff_member(app, core, "agnes", role="agent")
    _, application_id = await in_review(core)
    csrf = await sign_in(client, "agnes", page="/console")
    for path in (*PAGES, f"/review/applications/{application_id}"):
        page = await client.get(path, headers=HTML)
        assert page.status == 403 and "cannot open this page" in await page.text(), path
        api = await client.get(path.replace("/review", "/review/api", 1))
        assert api.status == 403 and (await api.json()) == {"error": "role"}, path
    refused = await client.post(f"/review/applications/{application_id}/approve",
                                data={"csrf_token": csrf, "rate_pct": "10"})
    assert refused.status == 403
    assert (await application(core, application_id)).status == "review"


async def test_a_manager_approves_at_a_rate_and_the_loan_is_listed_and_audited(app, core,
                                                                               client):
    manager = await staff_member(app, core, "maria")
    person, application_id = await in_review(core)
    csrf = await sign_in(client, "maria")
    queue = await (await client.get("/review/applications", headers=HTML)).text()
    assert f'href="/review/applications/{application_id}"' in queue
    assert "张*" in queue and person.phone not in queue and "张三" not in queue
    assert '<a href="/review/applications" aria-current="page">' in queue  # the nav
    detail = await (await client.get(f"/review/applications/{application_id}",
                                     headers=HTML)).text()
    assert "at most 24%" in detail and "Score factors" in detail
    assert person.phone not in detail and person.id_number not in detail

    approved = await client.post(f"/review/applications/{application_id}/approve",
                                 data={"csrf_token": csrf, "rate_pct": "11.5"},
                                 allow_redirects=False)
    assert approved.status == 303
    assert approved.headers["Location"] == "/review/applications?notice=approved"
    row = await application(core, application_id)
    assert (row.status, row.annual_rate, row.decided_by) == ("approved", Decimal("0.115"),
                                                             manager.id)
    async with core.uow(read_only=True) as uow:
        loan = (await uow.conn.execute(select(loans.c.status, loans.c.annual_rate).where(
            loans.c.application_id == application_id))).one()
    assert (loan.status, loan.annual_rate) == ("listed", Decimal("0.115"))
    assert [(r.action, r.actor_kind, r.actor_id) for r in
            await audit_rows(core, "loan_application", application_id)] == [
        ("application_approved", "staff", manager.id)]  # once: the service audits it
    again = await client.post(f"/review/applications/{application_id}/approve",
                              data={"csrf_token": csrf, "rate_pct": "11.5"}, headers=JSON)
    assert again.status == 409 and (await again.json())["error"] == "application_not_reviewable"


@pytest.mark.parametrize("rate", ["30", "0", "-5", "11.555", "ten"])
async def test_an_out_of_range_rate_is_refused_with_a_message_and_changes_nothing(
        app, core, client, rate):
    await staff_member(app, core, "mona")
    _, application_id = await in_review(core)
    csrf = await sign_in(client, "mona")
    refused = await client.post(f"/review/applications/{application_id}/approve",
                                data={"csrf_token": csrf, "rate_pct": rate},
                                allow_redirects=False)
    body = await refused.text()
    assert refused.status == 400
    assert "above 0 and at most 24%" in body and 'role="alert"' in body
    assert f'value="{rate}"' in body  # what was typed is kept in the form
    assert (await application(core, application_id)).status == "review"
    assert await audit_rows(core, "loan_application", application_id) == []
    async with core.uow(read_only=True) as uow:
        assert (await uow.conn.execute(select(loans.c.id))).first() is None


async def test_a_manager_rejects_with_a_reason_and_a_private_note(app, core, client):
    manager = await staff_member(app, core, "rita")
    _, application_id = await in_review(core)
    csrf = await sign_in(client, "rita")
    no_reason = await client.post(f"/review/applications/{application_id}/reject",
                                  data={"csrf_token": csrf, "reason": "because"})
    assert no_reason.status == 400 and "Choose the reason" in await no_reason.text()
    rejected = await client.post(
        f"/review/applications/{application_id}/reject",
        data={"csrf_token": csrf, "reason": "income_not_verified",
              "note": "payslips <b>do not</b> match the bank statement"}, allow_redirects=False)
    assert rejected.headers["Location"] == "/review/applications?notice=rejected"
    row = await application(core, application_id)
    assert (row.status, row.reason, row.decided_by) == ("rejected", "income_not_verified",
                                                        manager.id)
    actions = [(r.action, r.actor_id) for r in
               await audit_rows(core, "loan_application", application_id)]
    assert actions == [("application_rejected", manager.id), ("due_diligence_note", manager.id)]
    detail = await (await client.get(f"/review/applications/{application_id}",
                                     headers=HTML)).text()
    assert "payslips &lt;b&gt;do not&lt;/b&gt; match" in detail
    assert 'action="/review/applications/' + str(application_id) + '/approve"' not in detail
    api = await (await client.get("/review/api/applications?status=rejected")).json()
    assert [a["id"] for a in api["items"]] == [application_id]


async def test_a_decision_without_the_csrf_token_is_refused(app, core, client):
    await staff_member(app, core, "nina")
    _, application_id = await in_review(core)
    await sign_in(client, "nina")
    for path, data in ((f"/review/applications/{application_id}/approve", {"rate_pct": "10"}),
                       (f"/review/applications/{application_id}/reject",
                        {"reason": "score_too_low"})):
        refused = await client.post(path, data=data)
        assert refused.status == 403 and (await refused.json()) == {"error": "csrf"}
        forged = await client.post(path, data={**data, "csrf_token": "forged"})
        assert forged.status == 403
    assert (await application(core, application_id)).status == "review"


async def test_the_application_queue_pages_by_fifty_and_filters(app, core, client):
    await staff_member(app, core, "paul")
    _, application_id = await in_review(core)
    template = {k: v for k, v in (await application(core, application_id))._mapping.items()
                if k not in ("id", "request_key")}
    async with core.uow() as uow:  # copies of the one real application, cheaper than 55
        await uow.conn.execute(insert(loan_applications), [
            {**template, "grade": "B" if n % 5 == 0 else template["grade"],
             "created_at": template["created_at"] + timedelta(seconds=n + 1)}
            for n in range(54)])
        await uow.commit()
    await sign_in(client, "paul")
    first = await (await client.get("/review/api/applications")).json()
    assert len(first["items"]) == 50 and first["previous"] is None
    assert first["items"][0]["id"] == application_id  # the oldest first
    assert first["next"] == "/review/api/applications?page=2"
    second = await (await client.get(first["next"])).json()
    assert len(second["items"]) == 5 and second["next"] is None
    assert second["previous"] == "/review/api/applications?page=1"
    assert not {a["id"] for a in first["items"]} & {a["id"] for a in second["items"]}
    page = await (await client.get("/review/applications?page=2", headers=HTML)).text()
    assert 'rel="prev" href="/review/applications?page=1"' in page and 'rel="next"' not in page

    graded = await (await client.get("/review/api/applications?grade=B")).json()
    assert len(graded["items"]) == 11 and {a["grade"] for a in graded["items"]} == {"B"}
    other = await (await client.get("/review/api/applications?product=small_business")).json()
    assert other["items"] == []
    html = await (await client.get("/review/applications?grade=B&page=1",
                                   headers=HTML)).text()
    assert '<option value="B" selected>' in html


async def test_an_anti_fraud_flag_is_cleared_with_a_note_and_audited(app, core, client):
    manager = await staff_member(app, core, "fred")
    person = await borrower(core)
    async with core.uow() as uow:
        await raise_flag(uow, "shared_card", "shared_card:hash:1", user_id=person.user_id,
                         details={"accounts": [person.user_id, 999], "card_hash": "secret"})
        await uow.commit()
    async with core.uow(read_only=True) as uow:
        flag_id = (await uow.conn.execute(select(risk_flags.c.id))).scalar_one()
    csrf = await sign_in(client, "fred")
    listed = await (await client.get("/review/kyc?show=flags", headers=HTML)).text()
    assert f'action="/review/flags/{flag_id}/clear"' in listed and "/escalate" not in listed
    assert "张*" in listed and person.phone not in listed and "secret" not in listed
    api = await (await client.get("/review/api/kyc?show=flags&kind=shared_card")).json()
    assert [f["id"] for f in api["items"]] == [flag_id]
    assert api["items"][0]["details"] == {"accounts": [person.user_id, 999]}

    empty = await client.post(f"/review/flags/{flag_id}/clear", data={"csrf_token": csrf})
    assert empty.status == 400 and "Write a note" in await empty.text()
    not_aml = await client.post(f"/review/flags/{flag_id}/escalate",
                                data={"csrf_token": csrf, "note": "odd"})
    assert not_aml.status == 400
    cleared = await client.post(f"/review/flags/{flag_id}/clear",
                                data={"csrf_token": csrf, "note": "same household, checked"},
                                allow_redirects=False)
    assert cleared.headers["Location"] == "/review/kyc?show=flags&notice=cleared"
    async with core.uow(read_only=True) as uow:
        flag = (await uow.conn.execute(select(risk_flags))).one()
    assert (flag.status, flag.reviewed_by) == ("cleared", manager.id)
    assert [(r.action, r.actor_id, r.details["note"]) for r in
            await audit_rows(core, "risk_flag", flag_id)] == [
        ("risk_flag_cleared", manager.id, "same household, checked")]
    again = await client.post(f"/review/flags/{flag_id}/clear",
                              data={"csrf_token": csrf, "note": "twice"}, headers=JSON)
    assert again.status == 409
    history = await (await client.get("/review/api/kyc?show=flags&status=cleared")).json()
    assert history["items"][0]["trail"][0]["note"] == "same household, checked"
    # cleared, the shared card no longer sends the borrower's applications to review
    assert (await apply(core, person, strong_request())).status == "approved"


async def test_an_aml_flag_is_escalated_then_cleared_and_the_kind_filter_works(app, core,
                                                                              client):
    manager = await staff_member(app, core, "alma")
    person = await investor(core, "60000.00")  # at or above the large top-up line
    async with core.uow() as uow:
        await raise_flag(uow, "aml_quick_in_out", "aml_quick_in_out:o-9",
                         user_id=person.user_id, details={"order_id": "o-9", "hours": 24})
        await uow.commit()
    csrf = await sign_in(client, "alma")
    every = await (await client.get("/review/api/aml")).json()
    assert sorted(f["kind"] for f in every["items"]) == ["aml_large_top_up", "aml_quick_in_out"]
    large = await (await client.get("/review/api/aml?kind=aml_large_top_up")).json()
    (flag,) = large["items"]
    assert flag["details"]["amount"].startswith("60000")
    assert flag["phone"] != person.phone and flag["phone"].endswith(person.phone[-4:])

    escalated = await client.post(f"/review/flags/{flag['id']}/escalate",
                                  data={"csrf_token": csrf, "note": "source of funds asked"},
                                  allow_redirects=False)
    assert escalated.headers["Location"] == "/review/aml?notice=escalated"
    only = await (await client.get("/review/api/aml?status=escalated")).json()
    assert [f["id"] for f in only["items"]] == [flag["id"]] and only["items"][0]["escalated"]
    page = await (await client.get("/review/aml?status=escalated", headers=HTML)).text()
    assert "source of funds asked" in page and "Flag escalated" not in page
    await client.post(f"/review/flags/{flag['id']}/clear",
                      data={"csrf_token": csrf, "note": "salary bonus, payslip seen"})
    trail = await audit_rows(core, "risk_flag", flag["id"])
    assert [(r.action, r.actor_id) for r in trail] == [
        ("risk_flag_escalated", manager.id), ("risk_flag_cleared", manager.id)]
    still = await (await client.get("/review/api/aml")).json()
    assert [f["kind"] for f in still["items"]] == ["aml_quick_in_out"]


async def test_kyc_exceptions_list_rejected_and_stuck_identities_masked(app, core, client):
    await staff_member(app, core, "kim")
    refused = await verify(core, await register(core, roles={"borrower"}), name="不符测试")
    stuck = await register(core)
    core.identity_provider.unavailable_next = 1
    await verify(core, stuck, name="李四")
    core.clock.advance(timedelta(hours=3))  # its retry was due long ago
    await sign_in(client, "kim")
    api = await (await client.get("/review/api/kyc")).json()
    assert {(i["user_id"], i["status"]) for i in api["items"]} == {
        (refused.user_id, "rejected"), (stuck.user_id, "pending")}
    only = await (await client.get("/review/api/kyc?status=rejected")).json()
    assert [i["reason"] for i in only["items"]] == ["name_id_mismatch"]
    page = await (await client.get("/review/kyc", headers=HTML)).text()
    for person in (refused, stuck):
        assert person.id_number not in page and person.phone not in page
        assert person.name not in page
    assert "不*" in page and "李*" in page


async def overdue_with_task(core):
    """An overdue loan whose D+3 collections task is open."""
    person, _, loan_id = await active_loan(core)
    await drain_wallet(core, person)
    due = (await schedule(core, loan_id))[0].due_date
    for offset in range(1, 4):
        await run_day(core, due + timedelta(days=offset))
    async with core.uow(read_only=True) as uow:
        task_id = (await uow.conn.execute(select(servicing_tasks.c.id).where(
            servicing_tasks.c.loan_id == loan_id, servicing_tasks.c.kind == "collections",
            servicing_tasks.c.status == "open"))).scalar_one()
    return person, loan_id, task_id


async def test_collections_outcomes_and_promises_are_recorded(app, core, client):
    manager = await staff_member(app, core, "cole")
    person, loan_id, task_id = await overdue_with_task(core)
    csrf = await sign_in(client, "cole")
    api = await (await client.get("/review/api/collections?stage=D%2B3&min_dpd=1")).json()
    (task,) = api["items"]
    assert (task["id"], task["loan_id"], task["stage"]) == (task_id, loan_id, "D+3")
    assert task["days_overdue"] >= 1 and Decimal(task["overdue"]) > 0
    assert task["borrower"]["name"] == "张*" and person.phone not in str(api)
    assert (await (await client.get("/review/api/collections?min_dpd=99")).json())["items"] == []
    page = await (await client.get("/review/collections", headers=HTML)).text()
    assert f'action="/review/collections/{task_id}/promise"' in page
    assert person.phone not in page

    today = core.clock.today()
    past = await client.post(f"/review/collections/{task_id}/promise",
                             data={"csrf_token": csrf, "amount": "500",
                                   "date": (today - timedelta(days=1)).isoformat()})
    assert past.status == 400 and "today or later" in await past.text()
    promised = await client.post(
        f"/review/collections/{task_id}/promise",
        data={"csrf_token": csrf, "amount": "500.00",
              "date": (today + timedelta(days=5)).isoformat()}, allow_redirects=False)
    assert promised.headers["Location"] == "/review/collections?notice=promise_recorded"
    async with core.uow(read_only=True) as uow:
        pledge = (await uow.conn.execute(select(servicing_tasks).where(
            servicing_tasks.c.promise_status == "pending"))).one()
    assert (pledge.loan_id, pledge.promise_amount, pledge.assigned_to) == (
        loan_id, Decimal("500.00"), manager.id)
    assert pledge.promise_date == today + timedelta(days=5)
    assert [(r.action, r.actor_id, r.details["amount"]) for r in
            await audit_rows(core, "servicing_task", task_id)] == [
        ("promise_to_pay_recorded", manager.id, "500.00")]
    promises = await (await client.get("/review/api/collections?stage=promise")).json()
    assert [t["promise"]["status"] for t in promises["items"]] == ["pending"]

    wrong = await client.post(f"/review/collections/{task_id}/outcome",
                              data={"csrf_token": csrf, "outcome": "promise_to_pay"})
    assert wrong.status == 400
    logged = await client.post(f"/review/collections/{task_id}/outcome",
                               data={"csrf_token": csrf, "outcome": "contacted",
                                     "notes": "will pay on Friday"}, allow_redirects=False)
    assert logged.headers["Location"] == "/review/collections?notice=outcome_logged"
    async with core.uow(read_only=True) as uow:
        done = (await uow.conn.execute(select(servicing_tasks).where(
            servicing_tasks.c.id == task_id))).one()
    assert (done.status, done.outcome, done.notes, done.assigned_to) == (
        "done", "contacted", "will pay on Friday", manager.id)
    assert ("collections_outcome", manager.id) in [
        (r.action, r.actor_id) for r in await audit_rows(core, "servicing_task", task_id)]
    closed = await client.post(f"/review/collections/{task_id}/outcome",
                               data={"csrf_token": csrf, "outcome": "refused"}, headers=JSON)
    assert closed.status == 409


async def test_a_due_diligence_note_is_added_and_the_index_leads_to_the_first_queue(
        app, core, client):
    await staff_member(app, core, "dana")
    _, application_id = await in_review(core)
    csrf = await sign_in(client, "dana")
    start = await client.get("/review", headers=HTML, allow_redirects=False)
    assert start.headers["Location"] == "/review/applications"
    saved = await client.post(f"/review/applications/{application_id}/note",
                              data={"csrf_token": csrf, "note": "employer confirmed by phone"},
                              allow_redirects=False)
    assert saved.headers["Location"] == f"/review/applications/{application_id}?notice=noted"
    async with core.uow(read_only=True) as uow:
        notes = (await uow.conn.execute(select(due_diligence_notes.c.note))).scalars().all()
    assert notes == ["employer confirmed by phone"]
    missing = await client.post("/review/applications/999999/note",
                                data={"csrf_token": csrf, "note": "x"})
    assert missing.status == 404
