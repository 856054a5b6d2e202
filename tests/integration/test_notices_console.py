"""The managers' notification pages through the product's own app: the outbox operations view
(counts by template, channel and status, the period filter, failures) and segment broadcasts
(create, count the audience, send, cancel); roles, CSRF and refusals that change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bots.console.notices import setup_notices
from bots.server import create_app
from bots.web.auth import STAFF, setup_auth
from core import notify
from core.adapters.tables import audit_log, broadcasts, outbox
from tests.integration import console_helpers
from tests.integration.accounts_helpers import register
from tests.integration.console_helpers import FAST, HTML

JSON = {"Accept": "application/json"}
PAGES = ("/review/notices", "/review/broadcasts")


@pytest.fixture
async def app(core):
    # The staff pages without the chat channels, whose dispatcher would deliver the notices
    # these tests count while they count them.
    app = create_app(core, close_core=False, background=False, chat=False)
    setup_auth(app, core)
    setup_notices(app, core)
    app[STAFF].hasher = FAST
    return app


@pytest.fixture
async def client(app, aiohttp_client):
    return await aiohttp_client(app)


async def manager(app, core, client, name: str = "maria", role: str = "manager"):
    """A signed-in staff member and the session's CSRF token."""
    member = await console_helpers.staff_member(app, core, name, role)
    return member, await console_helpers.sign_in(client, name, page="/review/notices")


def broadcast_form(csrf: str, **changes: object) -> dict[str, object]:
    form: dict[str, object] = {"csrf_token": csrf, "name": "March top-up nudge",
                               "text_zh": "充值享受新人礼。",
                               "text_en": "Top up for the new-user gift.",
                               "buttons": "flow:top_up", "role": "investor"}
    return {k: v for k, v in {**form, **changes}.items() if v is not None}


async def write_notices(core, *notices: tuple[int | None, str, str, str | None, str | None]):
    """Outbox notices written through ``core.notify``, then moved to a status as the
    dispatcher or a sender would: (user, template, status, channel, error)."""
    async with core.uow() as uow:
        for n, (user_id, template, status, channel, error) in enumerate(notices):
            key = f"test:{core.clock.now().isoformat()}:{n}"
            notice_id = await notify.enqueue(uow, user_id, template, {}, key)
            if status != "pending":
                await uow.conn.execute(update(outbox).where(outbox.c.id == notice_id).values(
                    status=status, channel=channel, last_error=error,
                    not_before=core.clock.now() + timedelta(hours=5)
                    if status == "deferred" else core.clock.now()))
        await uow.commit()


async def rows_of(core, table):
    async with core.uow(read_only=True) as uow:
        return (await uow.conn.execute(select(table).order_by(table.c.id))).all()


# The operations view ------------------------------------------------------------------------


async def test_a_manager_sees_notices_counted_by_template_channel_and_status(app, core, client):
    person = await register(core)
    async with core.uow() as uow:  # what registering wrote, so only ours are counted below
        before = (await uow.conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    await write_notices(
        core,
        (person.user_id, "payment_received", "pending", None, None),
        (person.user_id, "payment_received", "pending", None, None),
        (person.user_id, "payment_received", "sent", "telegram", None),
        (person.user_id, "payment_received", "failed", "telegram", "Forbidden: bot was blocked"),
        (person.user_id, "repayment_reminder", "deferred", "web", None),
        (person.user_id, "broadcast", "muted", "telegram", None))
    await manager(app, core, client)

    data = await (await client.get("/review/api/notices")).json()
    assert data["filters"] == {"since": "7d"}
    counts = {(r["template"], r["channel"]): r["counts"] for r in data["rows"]}
    assert counts[("payment_received", "-")] == {"pending": 2}
    assert counts[("payment_received", "telegram")] == {"sent": 1, "failed": 1}
    assert counts[("repayment_reminder", "web")] == {"deferred": 1}
    assert counts[("broadcast", "telegram")] == {"muted": 1}
    assert sum(data["totals"].values()) == before + 6
    assert (data["totals"]["sent"], data["totals"]["failed"], data["totals"]["deferred"],
            data["totals"]["muted"], data["totals"]["queued"]) == (1, 1, 1, 1, 0)
    deferred = next(r for r in data["rows"] if r["template"] == "repayment_reminder")
    assert deferred["deferred_until"] == "2026-03-02T15:00+08:00"  # 02:00 UTC + 5 h, local
    assert [(f["user_id"], f["template"], f["channel"], f["error"]) for f in
            data["failures"]] == [(person.user_id, "payment_received", "telegram",
                                   "Forbidden: bot was blocked")]

    page = await (await client.get("/review/notices", headers=HTML)).text()
    assert 'data-template="payment_received" data-channel="telegram"' in page
    assert "Forbidden: bot was blocked" in page and "2026-03-02 15:00" in page
    assert person.phone not in page and person.phone[-4:] not in page
    assert 'href="/review/broadcasts"' in page


async def test_the_period_filter_leaves_out_older_notices(app, core, client, clock):
    await write_notices(core, (None, "kyc_result", "sent", "web", None))
    clock.advance(timedelta(days=10))
    await write_notices(core, (None, "kyc_result", "sent", "web", None),
                        (None, "kyc_result", "pending", None, None))
    await manager(app, core, client)

    async def sent(since: str) -> int:
        data = await (await client.get(f"/review/api/notices?since={since}")).json()
        return data["totals"]["sent"]

    assert (await sent("24h"), await sent("7d"), await sent("30d"), await sent("all"),
            await sent("bogus")) == (1, 1, 2, 2, 1)
    page = await (await client.get("/review/notices?since=30d", headers=HTML)).text()
    assert '<option value="30d" selected>' in page


async def test_an_agent_gets_403_and_a_visitor_is_sent_to_sign_in(app, core, client):
    for path in PAGES:
        anonymous = await client.get(path, headers=HTML, allow_redirects=False)
        assert anonymous.status == 302
        assert anonymous.headers["Location"].startswith("/login?next=")
        api = await client.get(path.replace("/review", "/review/api", 1))
        assert api.status == 401
    _, csrf = await manager(app, core, client, "agnes", role="agent")
    for path in PAGES:
        page = await client.get(path, headers=HTML)
        assert page.status == 403 and "cannot open this page" in await page.text(), path
        api = await client.get(path.replace("/review", "/review/api", 1))
        assert api.status == 403 and await api.json() == {"error": "role"}
    refused = await client.post("/review/broadcasts", data=broadcast_form(csrf))
    assert refused.status == 403
    preview = await client.post("/review/broadcasts/preview", data=broadcast_form(csrf))
    assert preview.status == 403
    assert await rows_of(core, broadcasts) == []


# Broadcasts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "reason"), [
    ({"text_en": "  "}, "Write the message in both Chinese and English."),
    ({"name": ""}, "Give the broadcast a name of 1-120 characters."),
    ({"send_at": "2026-03-01T09:00"}, "The send time must be in the future."),
    ({"send_at": "next tuesday"}, "Enter the send time as a date and a time"),
    ({"inactive_days": "-3"}, "The segment has a value that is not allowed: inactive_days=-3."),
    ({"buttons": ["flow:top_up", "flow:browse", "flow:kyc", "flow:card"]},
     "Choose buttons from the list offered."),
])
async def test_a_broadcast_that_breaks_a_rule_is_refused_with_the_reason_and_nothing_is_saved(
        app, core, client, changes, reason):
    _, csrf = await manager(app, core, client)
    refused = await client.post("/review/broadcasts", data=broadcast_form(csrf, **changes))
    body = await refused.text()
    assert refused.status == 400
    assert reason in body and 'role="alert"' in body
    assert "充值享受新人礼。" in body  # what was typed is kept in the form
    assert await rows_of(core, broadcasts) == []
    as_json = await client.post("/review/broadcasts", data=broadcast_form(csrf, **changes),
                                headers=JSON)
    assert as_json.status == 400 and reason in (await as_json.json())["message"]


async def test_a_valid_broadcast_is_listed_as_a_draft_and_one_with_a_time_as_scheduled(
        app, core, client):
    member, csrf = await manager(app, core, client)
    saved = await client.post("/review/broadcasts", allow_redirects=False, data=broadcast_form(
        csrf, buttons=["flow:top_up", "flow:browse"], risk_levels=["C2", "C3"], tiers="0",
        min_idle_balance="500", no_first_investment="on"))
    assert saved.status == 303
    assert saved.headers["Location"] == "/review/broadcasts?notice=created"
    later = await client.post("/review/broadcasts", allow_redirects=False, data=broadcast_form(
        csrf, name="Tomorrow morning", send_at="2026-03-03T10:00"))
    assert later.headers["Location"] == "/review/broadcasts?notice=scheduled"

    draft, scheduled = await rows_of(core, broadcasts)
    assert (draft.status, draft.created_by, draft.buttons) == (
        "draft", member.id, ["flow:top_up", "flow:browse"])
    assert draft.segment["risk_levels"] == ["C2", "C3"] and draft.segment["tiers"] == [0]
    assert draft.segment["min_idle_balance"] == "500" and draft.segment["no_first_investment"]
    assert scheduled.status == "scheduled"  # 10:00 in Shanghai is 02:00 UTC
    assert scheduled.send_at == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)

    page = await (await client.get("/review/broadcasts?notice=created", headers=HTML)).text()
    assert "Broadcast saved as a draft." in page
    assert f'<tr data-id="{draft.id}" class="broadcast-draft">' in page
    assert "March top-up nudge" in page and "2026-03-03 10:00" in page
    items = (await (await client.get("/review/api/broadcasts")).json())["items"]
    assert [(b["name"], b["status"], b["reach"]) for b in items] == [
        ("Tomorrow morning", "scheduled", 0), ("March top-up nudge", "draft", 0)]


async def test_the_preview_counts_the_users_a_segment_picks_and_shows_no_one(app, core, client):
    investors = [await register(core), await register(core)]
    await register(core, roles={"borrower"})
    _, csrf = await manager(app, core, client)

    async def audience(**segment: object) -> int:
        response = await client.post("/review/broadcasts/preview", headers=JSON,
                                     data=broadcast_form(csrf, **segment))
        assert response.status == 200
        return (await response.json())["audience"]

    assert await audience(role="investor") == 2
    assert await audience(role="borrower") == 1
    assert await audience(role="") == 3
    assert await audience(role="", channels="web") == 0  # they all came by Telegram
    page = await client.post("/review/broadcasts/preview",
                             data=broadcast_form(csrf, role="investor", text_en=""))
    body = await page.text()
    assert page.status == 200 and 'data-audience="2"' in body
    assert all(p.phone not in body for p in investors)
    assert '<option value="investor" selected>' in body  # the form is kept
    assert await rows_of(core, broadcasts) == []


async def test_sending_a_draft_writes_one_notice_per_user_and_the_broadcast_is_sent(
        app, core, client):
    investors = [await register(core), await register(core)]
    await register(core, roles={"borrower"})
    member, csrf = await manager(app, core, client)
    await client.post("/review/broadcasts", data=broadcast_form(csrf))
    (draft,) = await rows_of(core, broadcasts)

    sent = await client.post(f"/review/broadcasts/{draft.id}/send", data={"csrf_token": csrf},
                             allow_redirects=False)
    assert sent.status == 303 and sent.headers["Location"] == "/review/broadcasts?notice=sent"
    notices = [n for n in await rows_of(core, outbox) if n.template == "broadcast"]
    assert sorted(n.user_id for n in notices) == sorted(p.user_id for p in investors)
    assert {n.params["broadcast_id"] for n in notices} == {draft.id}
    (after,) = await rows_of(core, broadcasts)
    assert (after.status, after.audience) == ("sent", 2)
    async with core.uow(read_only=True) as uow:
        trail = (await uow.conn.execute(select(audit_log.c.action, audit_log.c.actor_id).where(
            audit_log.c.subject_kind == "broadcast"))).all()
    assert [tuple(t) for t in trail] == [("broadcast_sent", member.id)]
    (item,) = (await (await client.get("/review/api/broadcasts")).json())["items"]
    assert (item["status"], item["reach"], item["waiting"], item["sent"]) == ("sent", 2, 2, 0)

    again = await client.post(f"/review/broadcasts/{draft.id}/send", headers=JSON,
                              data={"csrf_token": csrf})
    assert again.status == 409 and (await again.json())["error"] == "invalid_broadcast"
    assert len([n for n in await rows_of(core, outbox) if n.template == "broadcast"]) == 2
    missing = await client.post("/review/broadcasts/9999/send", data={"csrf_token": csrf})
    assert missing.status == 404


async def test_a_draft_can_be_cancelled_but_a_sent_broadcast_cannot(app, core, client):
    await register(core)
    _, csrf = await manager(app, core, client)
    await client.post("/review/broadcasts", data=broadcast_form(csrf, name="to cancel"))
    await client.post("/review/broadcasts", data=broadcast_form(csrf, name="to send"))
    to_cancel, to_send = await rows_of(core, broadcasts)
    cancelled = await client.post(f"/review/broadcasts/{to_cancel.id}/cancel",
                                  data={"csrf_token": csrf}, allow_redirects=False)
    assert cancelled.headers["Location"] == "/review/broadcasts?notice=cancelled"
    await client.post(f"/review/broadcasts/{to_send.id}/send", data={"csrf_token": csrf})

    refused = await client.post(f"/review/broadcasts/{to_send.id}/cancel",
                                data={"csrf_token": csrf})
    body = await refused.text()
    assert refused.status == 409
    assert "This broadcast has already gone out or was cancelled." in body
    assert [b.status for b in await rows_of(core, broadcasts)] == ["cancelled", "sent"]


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, core, client):
    _, csrf = await manager(app, core, client)
    await client.post("/review/broadcasts", data=broadcast_form(csrf))
    (draft,) = await rows_of(core, broadcasts)
    for path, data in (("/review/broadcasts", broadcast_form("")),
                       ("/review/broadcasts/preview", broadcast_form("")),
                       (f"/review/broadcasts/{draft.id}/send", {}),
                       (f"/review/broadcasts/{draft.id}/cancel", {})):
        missing = await client.post(path, data={k: v for k, v in data.items()
                                                if k != "csrf_token"})
        assert missing.status == 403 and await missing.json() == {"error": "csrf"}, path
        forged = await client.post(path, data={**data, "csrf_token": "forged"})
        assert forged.status == 403, path
    assert [(b.id, b.status) for b in await rows_of(core, broadcasts)] == [(draft.id, "draft")]
    assert [n for n in await rows_of(core, outbox) if n.template == "broadcast"] == []
