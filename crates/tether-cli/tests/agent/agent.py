"""An AG-UI agent server for tether's proxy tests, built on the official Python SDK.

Every event is a type of `ag_ui.core` and is written by `ag_ui.encoder.EventEncoder`, so the
protocol code on this side of the wire is the SDK's, not tether's. It answers `POST /` with
one SSE response per run, like the SDK's examples and most AG-UI agent servers.

    python agent.py            # binds 127.0.0.1 on a free port, prints `port N`, serves

What a run does is chosen by `forwardedProps.mode` (default "text"); `forwardedProps.tokenDelayMs`
sets the pause between streamed words (default 5 ms):

- text: one assistant message streamed word by word (WORDS), then RUN_FINISHED.
- crlf: the same, with every LF of the encoder's output written as CRLF.
- fail: streams half of the words, then dies: the response ends without its last chunk.
- interrupt: without `resume`, a tool call `tool-1` and RUN_FINISHED with an interrupt
  outcome (interrupt `approve-1`); with `resume`, a message naming the answer
  ("resume approve-1 resolved {...}"), then RUN_FINISHED.
- auth: the message is the request's `Authorization` header.
- invalid: content for a message that was never started.
- status: HTTP 503 with a short text body.
"""

import asyncio
import json
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from ag_ui.core import (
    Interrupt,
    RunAgentInput,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog."]


async def run(request: Request):
    body = await request.json()
    run_input = RunAgentInput.model_validate(body)
    props = run_input.forwarded_props or {}
    mode = props.get("mode", "text")
    delay = props.get("tokenDelayMs", 5) / 1000.0
    if mode == "status":
        return PlainTextResponse("agent overloaded, try later", status_code=503)
    encoder = EventEncoder(accept=request.headers.get("accept"))
    thread_id, run_id = run_input.thread_id, run_input.run_id
    message_id = f"{run_id}-message"

    def encode(event):
        text = encoder.encode(event)
        return text.replace("\n", "\r\n") if mode == "crlf" else text

    async def events():
        yield encode(RunStartedEvent(thread_id=thread_id, run_id=run_id))
        if mode == "invalid":
            yield encode(TextMessageContentEvent(message_id="never-started", delta="x"))
            return
        if mode == "interrupt" and run_input.resume:
            entry = run_input.resume[0]
            text = f"resume {entry.interrupt_id} {entry.status} {json.dumps(entry.payload)}"
            yield encode(TextMessageStartEvent(message_id=message_id, role="assistant"))
            yield encode(TextMessageContentEvent(message_id=message_id, delta=text))
            yield encode(TextMessageEndEvent(message_id=message_id))
            yield encode(RunFinishedEvent(thread_id=thread_id, run_id=run_id))
            return
        yield encode(TextMessageStartEvent(message_id=message_id, role="assistant"))
        if mode == "fail":
            words = WORDS[: len(WORDS) // 2]
        elif mode == "auth":
            words = [request.headers.get("authorization", "no Authorization header")]
        else:
            words = WORDS
        for word in words:
            await asyncio.sleep(delay)
            yield encode(TextMessageContentEvent(message_id=message_id, delta=word))
        if mode == "fail":
            raise RuntimeError("the model provider went away")
        yield encode(TextMessageEndEvent(message_id=message_id))
        if mode == "interrupt":
            yield encode(
                ToolCallStartEvent(
                    tool_call_id="tool-1",
                    tool_call_name="delete_file",
                    parent_message_id=message_id,
                )
            )
            yield encode(ToolCallArgsEvent(tool_call_id="tool-1", delta='{"path":"/tmp/x"}'))
            yield encode(ToolCallEndEvent(tool_call_id="tool-1"))
            outcome = RunFinishedInterruptOutcome(
                interrupts=[
                    Interrupt(id="approve-1", reason="tool_approval", tool_call_id="tool-1")
                ]
            )
            yield encode(RunFinishedEvent(thread_id=thread_id, run_id=run_id, outcome=outcome))
            return
        yield encode(RunFinishedEvent(thread_id=thread_id, run_id=run_id))

    return StreamingResponse(events(), media_type=encoder.get_content_type())


app = Starlette(routes=[Route("/", run, methods=["POST"])])

if __name__ == "__main__":
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is printed, so a connection made right away waits in the
    # backlog until uvicorn accepts it, instead of being refused.
    sock.listen(128)
    print(f"port {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)
