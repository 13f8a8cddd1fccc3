"""Timers: attempt deadlines and warnings, and the durable notification sender."""
