"""Where domains meet: every cross-domain hook, registered explicitly and once per process.

A domain that reacts to another's events (a card's transition, a merge in the master index) offers
the reaction as a function of its ``service``; this module is the one place that connects them, so
a reader sees every cross-domain effect here. ``Platform`` calls ``register_hooks`` when it is built,
so the API, the CLI, batch jobs and the tests all run the same hooks.
"""

from __future__ import annotations

from .accounts import service as accounts
from .appointments import service as appointments
from .audit import service as audit
from .cards import service as cards
from .family_doctors import service as family_doctors
from .me import service as me
from .mpi import service as mpi
from .payments import service as payments
from .kit import resealing
from .qr import service as qr
from .records import service as records
from .statistics import service as statistics

_registered = False


def register_hooks() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    # A card's life reaches the QR domain: a lost, cancelled or reissued card's static codes go on the
    # revocation list (docs/qr-format.md §12), and the sign-ins drawing its dynamic codes end (§9.1).
    cards.on_transition(qr.revoke_on_transition)
    cards.on_transition(me.end_code_drawing_sessions)
    # A merge carries the bookings and waitlist places along (before the card registry cancels the
    # merged card, so the cancellation finds nothing of theirs to cancel), an unmerge brings them back.
    mpi.on_merge(appointments.move_bookings)
    # A merge in the master index carries the card and the family bindings along, and an unmerge
    # brings exactly those back.
    mpi.on_merge(cards.move_card_links)
    mpi.on_unmerge("card", cards.undo_card_cancel)
    mpi.on_unmerge("family_binding", cards.undo_family_moves)
    # The audit trail, below every domain, learns a card's holder from the card registry and who is
    # one person across merges from the master index (a resident's access log, an auditor's search).
    audit.resolve_people_with(card_holder=lambda ctx, ehc_id: cards.get_card(ctx, ehc_id).person_id,
                              same_person=lambda ctx, person_id: mpi.ids_of(ctx, mpi.resolve(ctx, person_id)))
    # The master index asks the card registry (built on it) for a person's card, a card by its EHC ID
    # and every person's EHC ID (batch linkage's report).
    mpi.provide_cards(mpi.CardLookups(card_of_person=cards.card_of_person, get_card=cards.get_card,
                                      ehc_ids_by_person=cards.card_ids_by_person))
    # A resident signs in by phone: the accounts domain asks the card registry who holds a card with
    # that phone, and the master index for a holder's document numbers (to tell a couple apart).
    accounts.find_holders_with(
        holders_for_phone=cards.holders_for_phone,
        documents_of=lambda ctx, person: [i.value for i in mpi.identifiers_of(ctx, person, purpose="account.sign_in")
                                          if i.system.startswith("doc:")])
    # Re-sealing after a sealing key's rotation (``ehc keys reseal``) walks every domain's sealed columns.
    resealing.register([*mpi.sealed_columns(), *accounts.sealed_columns(), *family_doctors.sealed_columns(),
                        *records.sealed_columns(), *payments.sealed_columns()])
    # A merge carries family-doctor contracts, services, referrals and conditions along; an unmerge
    # moves exactly those back and reopens a contract the merge ended (two active ones cannot be one).
    mpi.on_merge(family_doctors.move_on_merge)
    mpi.on_unmerge("fd_contract", family_doctors.undo_contract_moves)
    mpi.on_unmerge("fd_contract_end", family_doctors.undo_contract_ends)
    mpi.on_unmerge("fd_row", family_doctors.undo_row_moves)
    # Appointments: a merge's undo, and a cancelled card's future bookings cancelled and told.
    mpi.on_unmerge("appt_booking", appointments.undo_booking_moves)
    mpi.on_unmerge("appt_booking_cancel", appointments.undo_booking_cancels)
    mpi.on_unmerge("appt_waitlist", appointments.undo_waitlist_moves)
    cards.on_transition(appointments.on_card_transition)
    # A family doctor's referral is booked, in the same transaction, into the receiving hospital's
    # referral quota (the first period with a place); the referral is marked booked with the reference.
    family_doctors.book_referrals_with(appointments.book_referral)
    # Health records: a record filed under a hospital number the index did not know waits until the number
    # is bound; a merge carries the person's records along and an unmerge brings exactly them back.
    mpi.on_identifier_bound(records.attach_pending)
    mpi.on_merge(records.move_on_merge)
    mpi.on_unmerge("record", records.undo_merge_moves)
    # The statistics pipeline reads every domain whose events count: a later domain adds its own
    # ``statistics_events`` source here (docs/statistics.md, "Adding a source").
    statistics.register_source("card", cards.statistics_events)
    statistics.register_source("card_use", qr.statistics_events)
    statistics.register_source("booking", appointments.statistics_events)
    statistics.register_source("family_doctor", family_doctors.statistics_events)
    statistics.register_source("payment", payments.statistics_events)
    statistics.register_source("record", records.statistics_events)
    statistics.register_source("visit", records.visit_statistics_events)
