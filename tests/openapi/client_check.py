"""Calls every read operation of quietbox-api through a client generated from its live
/openapi.json by openapi-python-client (tests/openapi/run.sh), and requires each answer to be
200 and parsed into the generated model of its documented schema: an operation whose success
body is undocumented parses to nothing and fails here.

    python client_check.py <generated package name>   (QUIETBOX_URL, QUIETBOX_KEY set)
"""

import datetime
import importlib
import os
import sys

pkg = sys.argv[1]
client_mod = importlib.import_module(f"{pkg}.client")
api = lambda name: importlib.import_module(f"{pkg}.api.default.{name}")  # noqa: E731

client = client_mod.AuthenticatedClient(
    base_url=os.environ["QUIETBOX_URL"],
    token=os.environ["QUIETBOX_KEY"],
    prefix="",
    auth_header_name="X-API-Key",
    raise_on_unexpected_status=True,
)

failures = []
passed = 0


def check(name, response):
    """A 200 whose body the generated client turned into one of its models."""
    global passed
    parsed = response.parsed
    status = int(response.status_code)
    if status != 200:
        failures.append(f"{name}: HTTP {status}: {response.content[:200]!r}")
    elif parsed is None or isinstance(parsed, (dict, list, str)) or type(parsed).__module__.split(".")[0] != pkg:
        failures.append(f"{name}: 200, but the generated client has no model for it (parsed {type(parsed).__name__})")
    else:
        passed += 1
        print(f"ok   {name}: {type(parsed).__name__}")
        return parsed
    print(f"FAIL {failures[-1]}")
    return None


# A scan first, so that the reads below have a mailbox state to answer from.
models = importlib.import_module(f"{pkg}.models")
scan = check("scan", api("scan").sync_detailed(client=client, body=models.ScanArgs.from_dict({"limit": 200})))
candidates = check("candidates", api("candidates").sync_detailed(client=client))
sender = None
if candidates is not None:
    listed = getattr(candidates, "candidates", None) or []
    sender = getattr(getattr(listed[0], "sender", None), "address", None) if listed else None
check("history", api("history").sync_detailed(client=client))
check("compliance", api("compliance").sync_detailed(client=client))
if sender:
    check("sender", api("sender").sync_detailed(str(sender), client=client))
else:
    failures.append("sender: no candidate sender to look up (candidates did not parse or are empty)")
    print(f"FAIL {failures[-1]}")
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
check(
    "availability",
    api("availability").sync_detailed(client=client, start=now, end=now + datetime.timedelta(days=3), slot_minutes=30),
)
check("ready", api("ready").sync_detailed(client=client))

print(f"generated client: {passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
