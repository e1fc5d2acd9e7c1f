"""The official Anthropic Python SDK against a nova gateway's /v1/messages: message,
stream, tools, errors.

Run by tests/sdk.rs with NOVA_GATEWAY_BASE (the gateway's root) and NOVA_GATEWAY_KEY.
"""
import os
import sys

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ["NOVA_GATEWAY_BASE"],
    api_key=os.environ["NOVA_GATEWAY_KEY"],
    max_retries=0,
)


def check(name, ok, detail=""):
    print(("ok " if ok else "FAILED ") + name + (": " + str(detail) if detail else ""))
    if not ok:
        sys.exit(1)


m = client.messages.create(model="mock", max_tokens=100, system="Be brief.",
                           messages=[{"role": "user", "content": "hello"}])
check("message", m.content[0].text == "f(hello)" and m.stop_reason == "end_turn", m)

with client.messages.stream(model="mock", max_tokens=100,
                            messages=[{"role": "user", "content": "hello"}]) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
check("stream", text == "f(hello)" and final.stop_reason == "end_turn", (text, final))

m = client.messages.create(
    model="tools", max_tokens=100,
    tools=[{"name": "weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}}}}],
    messages=[{"role": "user", "content": "Weather in Paris?"}],
)
block = m.content[0]
check("tools", block.type == "tool_use" and block.name == "weather"
      and block.input == {"city": "Paris"} and m.stop_reason == "tool_use", m)

try:
    client.messages.create(model="claude-9", max_tokens=10,
                           messages=[{"role": "user", "content": "x"}])
    check("unknown model", False)
except anthropic.NotFoundError as e:
    check("unknown model", e.status_code == 404, e)

bad = anthropic.Anthropic(base_url=os.environ["NOVA_GATEWAY_BASE"], api_key="wrong", max_retries=0)
try:
    bad.messages.create(model="mock", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    check("bad key", False)
except anthropic.AuthenticationError as e:
    check("bad key", e.status_code == 401, e)

got = ""
try:
    with client.messages.stream(model="broken", max_tokens=10,
                                messages=[{"role": "user", "content": "x"}]) as s:
        for t in s.text_stream:
            got += t
    check("broken stream raises", False, got)
except anthropic.APIError as e:
    check("broken stream raises", got == "Hel", (got, e))
