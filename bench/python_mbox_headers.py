#!/usr/bin/env python3
"""Reference for `cargo xtask bench`: read the headers quietbox reads from an mbox, with only
Python's standard library (`mailbox` + `email`).

It is the header-only path, the fastest the standard modules offer, so the comparison is fair
to Python: `mailbox.mbox` finds the messages, each header block (up to the first blank line) is
parsed by `email.parser.BytesHeaderParser`, then the same fields quietbox extracts are decoded:
From (display name and address), To, Subject (RFC 2047), Date, Message-ID, List-Id,
List-Unsubscribe, List-Unsubscribe-Post, Precedence, Auto-Submitted, X-Gmail-Labels.

Usage: python3 bench/python_mbox_headers.py <path.mbox>
Prints: messages=<n> seconds=<s> with_list_id=<n>
"""

import email.errors
import email.header
import email.parser
import email.utils
import mailbox
import sys
import time

FIELDS = (
    "To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Precedence",
    "Auto-Submitted",
)


def unfold(value):
    return " ".join(part.strip() for part in value.splitlines() if part.strip())


def decode(value):
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return value


def meta(headers):
    name, address = email.utils.parseaddr(decode(headers.get("From", "")))
    try:
        date = email.utils.parsedate_to_datetime(headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        date = None
    labels = [
        label.strip() for label in unfold(headers.get("X-Gmail-Labels", "")).split(",") if label.strip()
    ]
    record = {
        "from": f'"{name}" <{address}>' if name else address,
        "subject": decode(headers.get("Subject", "")),
        "date": date,
        "id": (headers.get("Message-ID") or "").strip("<> "),
        "labels": labels,
        "unread": any(label.lower() == "unread" for label in labels),
    }
    for field in FIELDS:
        value = headers.get(field)
        record[field] = unfold(value) if value else None
    return record


def main(path):
    start = time.perf_counter()
    parser = email.parser.BytesHeaderParser()
    box = mailbox.mbox(path, create=False)
    messages = []
    for key in box.iterkeys():
        with box.get_file(key) as message:
            message.readline()  # the `From ` separator line
            lines = []
            for line in message:
                if line in (b"\n", b"\r\n"):
                    break
                lines.append(line)
        messages.append(meta(parser.parsebytes(b"".join(lines))))
    seconds = time.perf_counter() - start
    with_list_id = sum(1 for m in messages if m["List-Id"])
    print(f"messages={len(messages)} seconds={seconds:.4f} with_list_id={with_list_id}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python_mbox_headers.py <path.mbox>")
    main(sys.argv[1])
