#!/usr/bin/env python3
"""Differential test of the local provider's busy time against an independent RFC 5545
expander: Python's `icalendar` + `recurring-ical-events` (with `x-wr-timezone`, as the
reference itself recommends for Google exports), pinned in tests/ics/run.sh.

For every calendar of the corpus and a set of windows per calendar, both sides produce the
busy intervals of VEVENTs that are not TRANSP:TRANSPARENT and not STATUS:CANCELLED (the
Google freeBusy rule), clipped to the window and merged; dates and floating times are read
in the asked zone. Any difference not listed (with its reason) in tests/ics/allowed.txt fails.

Usage: differential.py --ics-busy PATH [--allowed FILE] [--show N] DIR_OR_FILE...
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import zoneinfo

import icalendar
import recurring_ical_events
import x_wr_timezone

UTC = dt.timezone.utc
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata"]


def windows_for(text):
    """Fixed windows across the 2026 DST changes, plus windows at and ten years after the
    calendar's first DTSTART (where its events are)."""
    wins = [
        (dt.datetime(2026, 3, 20, tzinfo=UTC), dt.datetime(2026, 4, 10, tzinfo=UTC)),
        (dt.datetime(2026, 10, 20, tzinfo=UTC), dt.datetime(2026, 11, 10, tzinfo=UTC)),
    ]
    first = None
    for line in text.splitlines():
        if line.upper().startswith("DTSTART"):
            value = line.rsplit(":", 1)[-1].strip()
            try:
                day = dt.datetime.strptime(value[:8], "%Y%m%d").replace(tzinfo=UTC)
            except ValueError:
                continue
            if first is None or day < first:
                first = day
    if first is not None and dt.datetime(1900, 1, 1, tzinfo=UTC) < first < dt.datetime(2200, 1, 1, tzinfo=UTC):
        start = first - dt.timedelta(days=2)
        wins.append((start, start + dt.timedelta(days=45)))
        later = start.replace(year=start.year + 10) if not (start.month == 2 and start.day == 29) else start + dt.timedelta(days=3652)
        wins.append((later, later + dt.timedelta(days=30)))
    return wins


def to_utc(value, zone, end_of_day=False):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)
    raise TypeError(type(value))


def merge(intervals, start, end):
    out = []
    for s, e in sorted((max(s, start), min(e, end)) for s, e in intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [[s.strftime("%Y-%m-%dT%H:%M:%SZ"), e.strftime("%Y-%m-%dT%H:%M:%SZ")] for s, e in out]


def reference(text, wins, zone_name):
    zone = zoneinfo.ZoneInfo(zone_name)
    calendars = icalendar.Calendar.from_ical(text, multiple=True)
    for cal in calendars:
        # A VEVENT without DTSTART (allowed with METHOD, RFC 5545 3.6.1) has no time to be busy.
        cal.subcomponents = [c for c in cal.subcomponents
                             if c.name != "VEVENT" or c.get("DTSTART") is not None]
    result = []
    for start, end in wins:
        busy = []
        for cal in calendars:
            cal = x_wr_timezone.to_standard(cal)
            # Asked two days wider: the reference places dates in the window's own zone.
            wide = (start - dt.timedelta(days=2), end + dt.timedelta(days=2))
            for ev in recurring_ical_events.of(cal).between(*wide):
                if str(ev.get("TRANSP", "")).upper() == "TRANSPARENT":
                    continue
                if str(ev.get("STATUS", "")).upper() == "CANCELLED":
                    continue
                s = ev.get("DTSTART")
                if isinstance(s, list):
                    s = s[0]
                if s is None:
                    continue
                s = s.dt
                if ev.get("DTEND") is not None:
                    e = ev["DTEND"].dt
                elif ev.get("DURATION") is not None:
                    e = s + ev["DURATION"].dt
                elif isinstance(s, dt.datetime):
                    e = s
                else:
                    e = s + dt.timedelta(days=1)
                busy.append((to_utc(s, zone), to_utc(e, zone)))
        result.append(merge(busy, start, end))
    return result


def load_allowed(path):
    allowed = {}
    if path and os.path.exists(path):
        for raw in open(path, encoding="utf-8"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, _, reason = line.partition(" ")
            if not reason.strip():
                sys.exit(f"{path}: {name} has no reason")
            allowed[name] = reason.strip()
    return allowed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ics-busy", required=True)
    parser.add_argument("--allowed")
    parser.add_argument("--show", type=int, default=3)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()

    files = []
    names = {}
    for path in args.paths:
        if os.path.isdir(path):
            for root, _, entries in os.walk(path):
                for n in entries:
                    if n.endswith(".ics"):
                        f = os.path.join(root, n)
                        files.append(f)
                        names[f] = os.path.relpath(f, path)
        else:
            files.append(path)
            names[path] = os.path.basename(path)
    files.sort()

    def name_of(f):
        return names[f]

    allowed = load_allowed(args.allowed)
    # Reference first: which calendars it reads, and their windows.
    jobs = {}
    refs = {}
    invalid = []
    for f in files:
        text = open(f, "rb").read()
        try:
            wins = windows_for(text.decode("utf-8", "replace"))
            refs[f] = {z: reference(text, wins, z) for z in ZONES}
        except Exception as error:  # the reference refuses it: not a valid calendar
            invalid.append((f, f"{type(error).__name__}: {str(error)[:80]}"))
            continue
        jobs.setdefault(json.dumps([(s.isoformat(), e.isoformat()) for s, e in wins]), []).append(f)

    ours = {}
    for zone in ZONES:
        for wins_text, batch in jobs.items():
            job = {"tz": zone, "windows": json.loads(wins_text), "files": batch}
            out = subprocess.run([args.ics_busy], input=json.dumps(job), capture_output=True,
                                 text=True, check=True).stdout
            for line in out.splitlines():
                row = json.loads(line)
                ours[(row["file"], zone)] = row

    agree, allowed_diff, failures, used = 0, [], [], set()
    for f in files:
        if f not in refs:
            continue
        name = name_of(f)
        diffs = []
        for zone in ZONES:
            mine = ours[(f, zone)]
            if mine["error"]:
                diffs.append(f"{zone}: quietbox refuses it: {mine['error']}")
                continue
            wins = windows_for(open(f, "rb").read().decode("utf-8", "replace"))
            for (s, e), theirs, got in zip(wins, refs[f][zone], mine["busy"]):
                if theirs != got:
                    only_ref = [i for i in theirs if i not in got]
                    only_us = [i for i in got if i not in theirs]
                    diffs.append(f"{zone} {s:%Y-%m-%d}..{e:%Y-%m-%d}: reference only {only_ref[:args.show]} "
                                 f"(of {len(only_ref)}), quietbox only {only_us[:args.show]} (of {len(only_us)})")
        if not diffs:
            agree += 1
        elif name in allowed:
            used.add(name)
            allowed_diff.append(name)
        else:
            failures.append((name, diffs))
    compared = agree + len(allowed_diff) + len(failures)
    for name, diffs in failures:
        print(f"DIFFERENT {name}")
        for d in diffs[: args.show]:
            print(f"    {d}")
    for name in sorted(set(allowed) - used):
        print(f"note: {name} is allowed to differ but agrees (remove it from the allow-list)")
    print(f"corpus: {len(files)} calendars, {len(invalid)} refused by the reference (not compared), "
          f"{compared} compared over {len(ZONES)} zones x 2-4 windows: {agree} agree, "
          f"{len(allowed_diff)} differ as allowed, {len(failures)} differ")
    for f, why in invalid:
        mine = ours.get((f, ZONES[0]))
        print(f"    reference refuses {name_of(f)}: {why}")
    print(f"differential: {agree + len(allowed_diff)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
