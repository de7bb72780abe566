#!/usr/bin/env python3
"""The reference's time for the availability benchmark's query: the one-week window of
crates/gmail/benches/availability.rs over its 5,000-event calendar, parsed once (warm),
busy intervals as tests/ics/differential.py computes them; prints the median per query.

Usage (in the venv of tests/ics/run.sh): bench_reference.py target/bench/calendar-5000.ics [rounds]
"""

import datetime as dt
import statistics
import sys
import time

import icalendar
import recurring_ical_events

UTC = dt.timezone.utc


def main():
    path = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    cal = icalendar.Calendar.from_ical(open(path, "rb").read())
    query = recurring_ical_events.of(cal)
    start, end = dt.datetime(2026, 3, 23, tzinfo=UTC), dt.datetime(2026, 3, 30, tzinfo=UTC)
    times, count = [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        busy = [
            (ev["DTSTART"].dt, ev.get("DTEND"))
            for ev in query.between(start, end)
            if str(ev.get("TRANSP", "")).upper() != "TRANSPARENT"
            and str(ev.get("STATUS", "")).upper() != "CANCELLED"
        ]
        times.append(time.perf_counter() - t)
        count = len(busy)
    print(f"reference week query: {statistics.median(times) * 1000:.2f} ms median of {rounds}, {count} busy events")


if __name__ == "__main__":
    main()
