"""A chat front-end against a running ingest API: a thread, a message, its history, a webhook.

It opens a thread whose replies are also pushed to a callback URL (a receiver this program
listens on), posts a message with `?wait=` so the reply comes back in the same response, reads
the thread's history, and checks the signed callback with `channels.callback.verify` and the
same `CALLBACK_SIGNING_SECRET` the functions sign with. The functions must accept a callback
on this machine (`CALLBACK_ALLOW_PRIVATE=true`; the local stack does unless told otherwise).

    make stack            # in another terminal; it prints the ingest URL and `export TOKEN=...`
    .venv/bin/python examples/http_client.py http://127.0.0.1:8080 "$TOKEN"
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from messagedb_agent.channels.callback import SIGNATURE_HEADER, verify
from messagedb_agent.settings import Settings

CALLBACK_WAIT_SECONDS = 30.0


def listen() -> tuple[ThreadingHTTPServer, queue.Queue[tuple[bytes, str]]]:
    """A webhook on 127.0.0.1 that keeps each POST's body and signature header."""
    received: queue.Queue[tuple[bytes, str]] = queue.Queue()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.put((body, self.headers.get(SIGNATURE_HEADER, "")))
            self.send_response(200)  # anything else and the agent delivers again later
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def _indented(text: str, width: int = 10) -> str:
    return text.replace("\n", "\n" + " " * width)


def main(base_url: str, token: str, message: str) -> int:
    secret = Settings().callbacks.callback_signing_secret.get_secret_value()
    server, received = listen()
    callback_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            created = http.post("/v1/threads", json={"callback_url": callback_url})
            created.raise_for_status()
            thread_id = created.json()["thread_id"]
            print(f"thread    {thread_id}")

            posted = http.post(
                f"/v1/threads/{thread_id}/messages", params={"wait": 25}, json={"message": message}
            )
            posted.raise_for_status()
            reply = posted.json().get("reply")  # absent (202) if the reply took longer
            print(f"reply     {_indented(reply['text']) if reply else '(still being written)'}")

            history = http.get(f"/v1/threads/{thread_id}")
            history.raise_for_status()
            print("history:")
            for item in history.json()["messages"]:
                print(f"  {item['role']:<9} {_indented(item['text'], 12)}")

        body, signature = received.get(timeout=CALLBACK_WAIT_SECONDS)
        if not verify(secret, body, signature):
            print("callback  signature does NOT verify: check CALLBACK_SIGNING_SECRET")
            return 1
        pushed = json.loads(body)
        print(f"callback  verified, thread {pushed['thread_id']}")
        print(f"          {_indented(pushed['reply']['text'])}")
        return 0
    except queue.Empty:
        print(f"callback  none within {CALLBACK_WAIT_SECONDS:g} s (is CALLBACK_ALLOW_PRIVATE on?)")
        return 1
    finally:
        server.shutdown()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: http_client.py INGEST_URL TOKEN [MESSAGE]")
    sys.exit(main(sys.argv[1], sys.argv[2], " ".join(sys.argv[3:]) or "What is 12*(3+4)?"))
