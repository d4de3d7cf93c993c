"""Appointments with the card: schedules, sessions (号源), periods, bookings, waitlist, check-in (docs/appointments.md)."""
