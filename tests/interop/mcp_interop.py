"""Interop: the official `mcp` Python client against the real quietbox-mcp binary, over stdio
and over streamable HTTP.

Usage: python mcp_interop.py <path-to-quietbox-mcp> <data/sample dir>
"""

import asyncio
import os
import subprocess
import sys
import tempfile

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

KEY = "mcp-interop-key-0123456789abcdef012345"
READ_TOOLS = {"get_availability", "scan_inbox", "list_unsubscribe_candidates", "unsubscribe_history",
              "unsubscribe_compliance"}
MUTATION_TOOLS = {"unsubscribe", "send_unsubscribe_digest", "set_sender_decision"}


def env(sample: str, data: str, **extra: str) -> dict[str, str]:
    values = {
        "PATH": os.environ.get("PATH", ""),
        "AUTH_MODE": "api_key",
        "AGENT_API_KEY": KEY,
        "DATA_DIR": data,
        "LOCAL_MBOX": os.path.join(sample, "inbox.mbox"),
        "LOCAL_ICS": os.path.join(sample, "calendar.ics"),
        "BIND_ADDR": "127.0.0.1:0",
        "RUST_LOG": "warn",
    }
    values.update(extra)
    return values


async def exercise(session: ClientSession, expect_mutations: bool) -> int:
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    expected = READ_TOOLS | (MUTATION_TOOLS if expect_mutations else set())
    assert set(tools) == expected, sorted(tools)
    assert tools["scan_inbox"].input_schema["type"] == "object"
    result = await session.call_tool("list_unsubscribe_candidates", {})
    assert not result.is_error, result
    assert result.structured_content["candidates"][0]["sender"]["address"] == "deals@shop.example.com"
    result = await session.call_tool("scan_inbox", {"limit": 3})
    assert not result.is_error and result.structured_content["total"] == 300, result
    result = await session.call_tool("unsubscribe_compliance", {})
    assert not result.is_error and result.structured_content["summary"]["violating"] == 0, result
    checks = 4
    if expect_mutations:
        result = await session.call_tool("unsubscribe", {"sender": "deals@shop.example.com", "dry_run": True})
        assert not result.is_error and result.structured_content["result"] == "would_unsubscribe", result
        checks += 1
    return checks


async def over_stdio(binary: str, sample: str) -> int:
    with tempfile.TemporaryDirectory() as data:
        params = StdioServerParameters(command=binary, args=["--transport", "stdio"], env=env(sample, data))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                return await exercise(session, expect_mutations=True)


async def over_http(binary: str, sample: str, mutations: bool) -> int:
    with tempfile.TemporaryDirectory() as data:
        extra = {} if mutations else {"MCP_ENABLE_MUTATION_TOOLS": "false"}
        proc = subprocess.Popen([binary], env=env(sample, data, **extra), stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on "), line
            url = "http://" + line.removeprefix("listening on ") + "/mcp"
            async with httpx2.AsyncClient(headers={"X-API-Key": KEY}, timeout=30) as http:
                async with streamable_http_client(url, http_client=http) as streams:
                    read, write = streams[0], streams[1]
                    async with ClientSession(read, write) as session:
                        return await exercise(session, expect_mutations=mutations)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    binary, sample = sys.argv[1], sys.argv[2]
    checks = asyncio.run(over_stdio(binary, sample))
    checks += asyncio.run(over_http(binary, sample, mutations=True))
    checks += asyncio.run(over_http(binary, sample, mutations=False))
    print(f"mcp interop: {checks} passed, 0 failed")


if __name__ == "__main__":
    main()
