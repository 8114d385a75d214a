"""The ``revoke-tokens`` job: find API tokens by a filter and revoke them, safely and fast.

Without confirmation (``--yes``) it is a dry run: it lists, filters and reports, and
revokes nothing. A confirmed run journals its plan first, then each revocation as it
succeeds, so a run killed at any moment resumes with exactly the same set, neither
repeating nor missing one. Once every planned token is revoked the journal is cleared,
and the next run plans afresh.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkport import watchdog
from bulkport.breaker import Breaker
from bulkport.checkpoint import Journal
from bulkport.config import JobConfig
from bulkport.errors import ConfigError, RetriableError, SkippableError
from bulkport.jobs.migrate import make_client
from bulkport.jobs.token_filter import TokenFilter
from bulkport.model import Token
from bulkport.portals import registry
from bulkport.portals.base import TokenStore
from bulkport.progress import ProgressBar
from bulkport.queue import pipeline
from bulkport.report import Report
from bulkport.store import StateStore, transaction

PLANNED, PLAN_SEALED, REVOKED = "planned_token", "plan", "token"
TOKEN = "token"  # history: what the actions are about
SAMPLE = 10


async def _plan(portal: TokenStore, token_filter: TokenFilter, job: JobConfig,
                report: Report) -> list[Token]:
    """List, filter, and drop the run's own token."""
    tokens = await portal.collect(token_filter.users, concurrency=job.options.connections,
                                  on_error=lambda what, error: report.fail(what, error))
    report.count("tokens_listed", len(tokens))
    selected, spared = token_filter.select(tokens)
    if spared:
        report.count("tokens_spared_by_keep_newest", spared)
    seen_users = {t.user for t in tokens}
    for user in token_filter.users or ():
        if user not in seen_users:
            report.note(f"no token listed for user {user!r} on {portal.describe()} (unknown "
                        "user, no tokens, or a key that only sees its own)")
    own = portal.own_token_id()
    mine = [t for t in selected if t.id == own]
    for token in mine:
        report.acted("skipped_in_use_by_this_run", entity=TOKEN, **token.row())
        report.note(f"token {token.id} ({token.user}/{token.name}) is the one this run uses: "
                    "not revoked")
    return [t for t in selected if t.id != own]


def _print_plan(plan: list[Token], report: Report, portal: TokenStore, out: TextIO) -> None:
    print(f"DRY RUN: {len(plan):,} token(s) would be revoked on {portal.describe()}; "
          "nothing was changed.", file=out)
    for title, counter in (("user", Counter(t.user for t in plan)),
                           ("name", Counter(t.name for t in plan))):
        shown = ", ".join(f"{key or '(none)'} {n:,}" for key, n in counter.most_common(20))
        more = f" … and {len(counter) - 20} more" if len(counter) > 20 else ""
        print(f"  by {title}: {shown or '-'}{more}", file=out)
    if plan:
        print("  sample:", file=out)
        for t in plan[:SAMPLE]:
            print(f"    {t.user}  {t.name}  {t.id}  created {t.created_at or '?'}  "
                  f"last used {t.last_access or 'never'}", file=out)
    if report.counts["tokens_spared_by_keep_newest"]:
        print(f"  kept by keep_newest: {report.counts['tokens_spared_by_keep_newest']:,}",
              file=out)
    print("Run again with --yes to revoke them; the full list is in the report.", file=out)


def _saved_plan(journal: Journal, token_filter: TokenFilter) -> list[Token] | None:
    """The plan of an unfinished confirmed run, or None when there is none."""
    sealed = journal.get(PLAN_SEALED, "sealed")
    if sealed is None:
        journal.clear()  # a plan torn by a crash: nothing was revoked from it yet
        return None
    if sealed.get("filter") != token_filter.fingerprint():
        done = journal.count(REVOKED)
        raise ConfigError(
            f"{journal.state_dir}: an unfinished revocation ({done} of {sealed.get('size')} "
            "done) was planned with another [filter]; run it with its own filter to finish it, "
            "or delete that directory to start over")
    return [Token(id=str(e["id"]), user=str(e.get("user") or ""), name=str(e.get("name") or ""),
                  created_at=e.get("created_at"), last_access=e.get("last_access"))
            for e in journal.entries(PLANNED)]


def _save_plan(journal: Journal, token_filter: TokenFilter, plan: list[Token]) -> None:
    with transaction(journal.store.db):  # the whole plan, sealed, or none of it
        for token in plan:
            journal.record(PLANNED, token.id, **token.row())
        journal.record(PLAN_SEALED, "sealed", filter=token_filter.fingerprint(), size=len(plan))


async def revoke_tokens(job: JobConfig, *, store: StateStore, report: Report,
                        confirmed: bool = False, progress: bool = False,
                        stop: anyio.Event | None = None, out: TextIO | None = None) -> None:
    """Run a ``revoke-tokens`` job; every token acted on lands in ``report.actions``.

    Raises:
        AuthError: the run's own key was refused; revocations done so far are journaled.
        ConfigError: the state directory holds a plan made with another filter.
    """
    token_filter = job.token_filter
    assert token_filter is not None and job.target is not None
    out = out or sys.stdout
    async with make_client(job) as client:
        portal = registry.open_tokens(job.target, client)
        try:
            await portal.check(token_filter.users)  # what `bulkport check` asks first, too
            if not confirmed:
                plan = await _plan(portal, token_filter, job, report)
                for token in plan:
                    report.acted("would_revoke", entity=TOKEN, **token.row())
                _print_plan(plan, report, portal, out)
                return
            journal = store.journal
            saved = _saved_plan(journal, token_filter)
            if saved is None:
                plan = await _plan(portal, token_filter, job, report)
                _save_plan(journal, token_filter, plan)
            else:
                plan = saved
                report.note(f"resumed an unfinished run: {journal.count(REVOKED)} of "
                            f"{len(plan)} planned tokens were already revoked")
            await _revoke(portal, plan, journal, job, report, progress, stop)
            if report.ok and not (stop and stop.is_set()):
                journal.clear()
        finally:
            report.requests = dict(client.requests)


async def _revoke(portal: TokenStore, plan: list[Token], journal: Journal, job: JobConfig,
                  report: Report, progress: bool, stop: anyio.Event | None) -> None:
    todo: list[Token] = []
    for token in plan:
        done = journal.get(REVOKED, token.id)
        if done is None:
            todo.append(token)
        else:
            report.acted(done["outcome"], **token.row(), earlier_run=True)  # not this run's act
    bar = ProgressBar(watchdog.current(), progress=progress, total=len(todo), desc="revoking",
                      unit="token")

    async def produce(send: MemoryObjectSendStream[Token]) -> None:
        async with send:
            for token in todo:
                await send.send(token)

    breaker = Breaker(job.options.max_repeated_failures, "tokens")

    async def revoke_one(token: Token) -> None:
        try:
            outcome = await portal.revoke(token, job.options.reason)
        except (SkippableError, RetriableError) as error:
            report.fail(f"token {token.id}", error, user=token.user, name=token.name)
            report.acted("revoke_failed", entity=TOKEN, **token.row())
            breaker.failure(error)
        else:
            with transaction(journal.store.db):  # journaled and in the history, or neither
                journal.record(REVOKED, token.id, outcome=outcome)
                report.acted(outcome, entity=TOKEN, **token.row())
            breaker.success()
        finally:
            bar.update()

    try:
        await pipeline(produce, revoke_one, workers=job.options.workers, stop=stop)
    finally:
        bar.close()
