"""The official OpenAI Python SDK against a nova gateway: chat, stream, tools, errors.

Run by tests/sdk.rs with NOVA_GATEWAY_URL (the gateway's /v1) and NOVA_GATEWAY_KEY.
Prints one line per check; exits non-zero on the first failure.
"""
import os
import sys

import openai

client = openai.OpenAI(
    base_url=os.environ["NOVA_GATEWAY_URL"],
    api_key=os.environ["NOVA_GATEWAY_KEY"],
    max_retries=0,
)


def check(name, ok, detail=""):
    print(("ok " if ok else "FAILED ") + name + (": " + str(detail) if detail else ""))
    if not ok:
        sys.exit(1)


# Chat.
r = client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hello"}])
check("chat", r.choices[0].message.content == "f(hello)", r)
check("chat usage", r.usage is not None and r.usage.total_tokens > 0, r.usage)

# Stream, with usage.
text = ""
usage = None
finish = None
for chunk in client.chat.completions.create(
    model="mock",
    messages=[{"role": "user", "content": "hello"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
check("stream", text == "f(hello)" and finish == "stop", (text, finish))
check("stream usage", usage is not None and usage.total_tokens > 0, usage)

# Tools (the `tools` route's service answers with a call).
r = client.chat.completions.create(
    model="tools",
    messages=[{"role": "user", "content": "Weather in Paris?"}],
    tools=[{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}],
)
call = r.choices[0].message.tool_calls[0]
check("tools", call.function.name == "weather" and call.function.arguments == '{"city":"Paris"}'
      and r.choices[0].finish_reason == "tool_calls", r)

# Legacy completions.
r = client.completions.create(model="mock", prompt="hi")
check("completions", r.choices[0].text == "f(hi)", r)

# Models.
ids = sorted(m.id for m in client.models.list())
check("models", ids == ["broken", "mock", "tools"], ids)

# Errors: the SDK's own exception classes.
try:
    client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    check("unknown model", False)
except openai.NotFoundError as e:
    check("unknown model", e.status_code == 404 and "gpt-9" in str(e), e)

try:
    client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "x"}],
                                   temperature=9)
    check("bad parameter", False)
except openai.BadRequestError as e:
    check("bad parameter", e.status_code == 400, e)

bad = openai.OpenAI(base_url=os.environ["NOVA_GATEWAY_URL"], api_key="wrong", max_retries=0)
try:
    bad.chat.completions.create(model="mock", messages=[{"role": "user", "content": "x"}])
    check("bad key", False)
except openai.AuthenticationError as e:
    check("bad key", e.status_code == 401, e)

# A stream that breaks after content: the SDK raises, it does not end quietly.
got = ""
try:
    for chunk in client.chat.completions.create(
        model="broken", messages=[{"role": "user", "content": "x"}], stream=True
    ):
        for c in chunk.choices:
            got += c.delta.content or ""
    check("broken stream raises", False, got)
except openai.APIError as e:
    check("broken stream raises", got == "Hel" and not isinstance(e, openai.APIStatusError), (got, e))
