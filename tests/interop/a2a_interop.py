"""Interop: the official `a2a-sdk` client against the real quietbox-a2a binary.

Usage: python a2a_interop.py <path-to-quietbox-a2a> <data/sample dir>
Starts the binary on a free loopback port with a temp DATA_DIR, then resolves the agent card,
sends messages, streams a scan, gets and lists tasks. Any rejection by the SDK fails the test.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid

import httpx
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import GetTaskRequest, ListTasksRequest, Message, Part, Role, SendMessageRequest, TaskState
from google.protobuf import struct_pb2

KEY = "interop-key-0123456789abcdef0123456789"


def start(binary: str, sample: str, data: str) -> tuple[subprocess.Popen, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AUTH_MODE": "api_key",
        "AGENT_API_KEY": KEY,
        "DATA_DIR": data,
        "LOCAL_MBOX": os.path.join(sample, "inbox.mbox"),
        "LOCAL_ICS": os.path.join(sample, "calendar.ics"),
        "BIND_ADDR": "127.0.0.1:0",
        "RUST_LOG": "warn",
    }
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), f"unexpected first line {line!r}"
    return proc, "http://" + line.removeprefix("listening on ")


def text_message(text: str) -> Message:
    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)])


def data_message(skill: str, args: dict) -> Message:
    value = struct_pb2.Value()
    value.struct_value.update({"skill": skill, "args": args})
    return Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(data=value)])


async def run(base: str) -> int:
    checks = 0
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=30) as http:
        card = await A2ACardResolver(http, base).get_agent_card()
        assert card.name == "quietbox"
        assert card.capabilities.streaming
        assert card.supported_interfaces[0].protocol_binding == "JSONRPC"
        assert {s.id for s in card.skills} >= {"availability", "scan_inbox", "unsubscribe_candidates", "unsubscribe"}
        assert "api_key" in card.security_schemes
        checks += 1
        transport = JsonRpcTransport(http, card, card.supported_interfaces[0].url)

        response = await transport.send_message(SendMessageRequest(message=text_message("show unsubscribe candidates")))
        task = response.task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
        data = task.artifacts[0].parts[0].data.struct_value
        candidates = data["candidates"]
        assert len(candidates) > 5 and candidates[0]["sender"]["address"] == "deals@shop.example.com"
        checks += 1

        response = await transport.send_message(
            SendMessageRequest(message=data_message("unsubscribe", {"sender": "deals@shop.example.com", "dry_run": True}))
        )
        assert response.task.status.state == TaskState.TASK_STATE_COMPLETED
        assert response.task.artifacts[0].parts[0].data.struct_value["result"] == "would_unsubscribe"
        checks += 1

        states = []
        artifact_seen = False
        async for event in transport.send_message_streaming(SendMessageRequest(message=text_message("scan inbox"))):
            which = event.WhichOneof("payload")
            if which == "task":
                states.append(event.task.status.state)
            elif which == "status_update":
                states.append(event.status_update.status.state)
                streamed_id = event.status_update.task_id
            elif which == "artifact_update":
                artifact_seen = True
                assert event.artifact_update.artifact.parts[0].data.struct_value["total"] == 300
        assert states[0] == TaskState.TASK_STATE_WORKING and states[-1] == TaskState.TASK_STATE_COMPLETED, states
        assert artifact_seen
        checks += 1

        fetched = await transport.get_task(GetTaskRequest(id=streamed_id))
        assert fetched.id == streamed_id and fetched.status.state == TaskState.TASK_STATE_COMPLETED
        checks += 1

        listed = await transport.list_tasks(ListTasksRequest(page_size=2))
        assert listed.total_size == 3 and len(listed.tasks) == 2 and listed.next_page_token
        rest = await transport.list_tasks(ListTasksRequest(page_size=2, page_token=listed.next_page_token))
        assert len(rest.tasks) == 1
        checks += 1
    return checks


def main() -> None:
    binary, sample = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as data:
        proc, base = start(binary, sample, data)
        try:
            checks = asyncio.run(run(base))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"a2a interop: {checks} passed, 0 failed")


if __name__ == "__main__":
    main()
