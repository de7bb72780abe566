#!/usr/bin/env bash
# Differential test of the local calendar (issue 20): quietbox's busy intervals against the
# Python reference, over the public test calendars shipped in the PyPI sdists of `icalendar`
# (BSD-2-Clause) and `recurring-ical-events` (LGPL-3.0-or-later; its calendars are only read
# here, not copied into the repository) plus tests/ics/cases/. Everything comes from PyPI,
# pinned (tests/ics/requirements.txt); the corpus is extracted under target/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${ICS_DIFF_DIR:-$root/target/ics-differential}
venv=$work/venv
mkdir -p "$work"
if ! "$venv/bin/python" -c 'import recurring_ical_events, x_wr_timezone' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/ics/requirements.txt"
fi
corpus=$work/corpus
if [ ! -f "$corpus/.complete" ]; then
    rm -rf "$corpus" "$work/sdist"
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$work/sdist" icalendar==7.3.2 recurring-ical-events==3.8.2
    mkdir -p "$corpus/icalendar" "$corpus/recurring_ical_events/test"
    tar -xzf "$work/sdist/icalendar-7.3.2.tar.gz" -C "$work/sdist"
    tar -xzf "$work/sdist/recurring_ical_events-3.8.2.tar.gz" -C "$work/sdist"
    cp -r "$work/sdist/icalendar-7.3.2/src/icalendar/tests" "$corpus/icalendar/tests"
    cp -r "$work/sdist/recurring_ical_events-3.8.2/recurring_ical_events/test/calendars" \
        "$corpus/recurring_ical_events/test/calendars"
    touch "$corpus/.complete"
fi
rm -rf "$corpus/quietbox" && cp -r "$root/tests/ics/cases" "$corpus/quietbox"
cargo build -q -p quietbox-gmail --example ics_busy
"$venv/bin/python" "$root/tests/ics/differential.py" \
    --ics-busy "$root/target/debug/examples/ics_busy" \
    --allowed "$root/tests/ics/allowed.txt" "$corpus"
