"""A small in-process Cloud Storage JSON API server: only what the archive's client calls use.

google-cloud-storage talks to it when `STORAGE_EMULATOR_HOST` names it. It follows the JSON
API documentation for the three calls it answers, and refuses anything else with 501, so a
new call the client starts making fails a test instead of passing unnoticed:

- objects.insert, multipart upload (`POST /upload/storage/v1/b/{bucket}/o?uploadType=multipart`,
  a `multipart/related` body: the object's JSON metadata, then its bytes):
  https://cloud.google.com/storage/docs/json_api/v1/objects/insert and
  https://cloud.google.com/storage/docs/uploading-objects#uploading-an-object (multipart);
  `ifGenerationMatch=0` creates the object only if no live object has that name, else
  412 Precondition Failed: https://cloud.google.com/storage/docs/request-preconditions
- objects.get, metadata (`GET /storage/v1/b/{bucket}/o/{object}`) and media
  (`GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`), with `x-goog-hash` carrying the
  CRC32C and MD5 the client checks a download against:
  https://cloud.google.com/storage/docs/json_api/v1/objects/get and
  https://cloud.google.com/storage/docs/json_api/v1/objects#resource (size, crc32c, md5Hash
  as base64 of the big-endian bytes)
Errors are JSON error bodies (`{"error": {"code", "message", "errors"}}`), as
https://cloud.google.com/storage/docs/json_api/v1/status-codes describes.

Not implemented (a 501): resumable uploads (the client uses them above 8 MiB), listing,
deleting, and every other call.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import google_crc32c


@dataclass
class StoredObject:
    bucket: str
    name: str
    body: bytes
    content_type: str
    generation: int

    def resource(self) -> dict[str, Any]:
        crc = google_crc32c.value(self.body).to_bytes(4, "big")
        return {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "bucket": self.bucket,
            "name": self.name,
            "generation": str(self.generation),
            "metageneration": "1",
            "contentType": self.content_type,
            "size": str(len(self.body)),
            "crc32c": base64.b64encode(crc).decode(),
            "md5Hash": base64.b64encode(hashlib.md5(self.body).digest()).decode(),  # noqa: S324
        }


class FakeGcs:
    def __init__(self, buckets: tuple[str, ...]) -> None:
        self.buckets = set(buckets)
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self.calls: list[str] = []
        self.generation = 1_700_000_000_000_000
        self.lock = threading.Lock()

    def corrupt(self, bucket: str, name: str) -> None:
        """Flip one byte of a stored object, as a damaged copy would read."""
        stored = self.objects[(bucket, name)]
        body = bytearray(stored.body)
        body[len(body) // 2] ^= 0x01
        stored.body = bytes(body)


def _handler(fake: FakeGcs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: dict[str, Any]) -> None:
            self._answer(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _error(self, status: int, reason: str, message: str) -> None:
            self._json(
                status,
                {
                    "error": {
                        "code": status,
                        "message": message,
                        "errors": [{"domain": "global", "reason": reason, "message": message}],
                    }
                },
            )

        def _route(self) -> tuple[list[str], dict[str, list[str]]]:
            parts = urlsplit(self.path)
            fake.calls.append(f"{self.command} {parts.path}?{parts.query}")
            return [unquote(p) for p in parts.path.strip("/").split("/")], parse_qs(parts.query)

        def do_POST(self) -> None:
            path, query = self._route()
            if path[:5] != ["upload", "storage", "v1", "b", path[4] if len(path) > 4 else ""]:
                return self._error(501, "notImplemented", "only uploads are implemented")
            if len(path) != 6 or path[5] != "o" or query.get("uploadType") != ["multipart"]:
                return self._error(501, "notImplemented", "only multipart uploads")
            bucket = path[4]
            if bucket not in fake.buckets:
                return self._error(
                    404, "notFound", f"The specified bucket {bucket} does not exist."
                )
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            content_type = self.headers.get("Content-Type", "")
            if not content_type.startswith("multipart/related"):
                return self._error(400, "invalid", "a multipart upload is multipart/related")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + raw
            )
            parts = list(message.iter_parts())  # type: ignore[attr-defined]
            if len(parts) != 2:
                return self._error(400, "invalid", "a multipart upload has exactly two parts")
            metadata = json.loads(parts[0].get_payload(decode=True))
            media = parts[1].get_payload(decode=True)
            name = metadata.get("name") or (query.get("name") or [""])[0]
            if not name:
                return self._error(400, "required", "Required object name")
            with fake.lock:
                existing = fake.objects.get((bucket, name))
                match = query.get("ifGenerationMatch")
                if match is not None:
                    wanted = int(match[0])
                    live = existing.generation if existing else 0
                    if wanted != live:
                        return self._error(
                            412,
                            "conditionNotMet",
                            "At least one of the pre-conditions you specified did not hold.",
                        )
                fake.generation += 1
                stored = StoredObject(
                    bucket,
                    name,
                    media,
                    metadata.get("contentType") or parts[1].get_content_type(),
                    fake.generation,
                )
                fake.objects[(bucket, name)] = stored
            return self._json(200, stored.resource())

        def do_GET(self) -> None:
            path, query = self._route()
            media = path[:1] == ["download"]
            rest = path[1:] if media else path
            if len(rest) < 6 or rest[:3] != ["storage", "v1", "b"] or rest[4] != "o":
                return self._error(501, "notImplemented", "only objects.get is implemented")
            bucket, name = rest[3], "/".join(rest[5:])
            stored = fake.objects.get((bucket, name))
            if stored is None:
                return self._error(404, "notFound", f"No such object: {bucket}/{name}")
            if media or query.get("alt") == ["media"]:
                resource = stored.resource()
                hashes = f"crc32c={resource['crc32c']},md5={resource['md5Hash']}"
                return self._answer(
                    200,
                    stored.body,
                    {
                        "Content-Type": stored.content_type,
                        "x-goog-hash": hashes,
                        "x-goog-generation": str(stored.generation),
                        "x-goog-stored-content-length": str(len(stored.body)),
                    },
                )
            return self._json(200, stored.resource())

        def do_PUT(self) -> None:
            self._route()
            self._error(501, "notImplemented", "resumable uploads are not implemented")

        def do_DELETE(self) -> None:
            self._route()
            self._error(501, "notImplemented", "objects.delete is not implemented")

    return Handler


@contextmanager
def serving(*buckets: str) -> Iterator[tuple[FakeGcs, str]]:
    """(the fake, its `host:port`) while it serves."""
    fake = FakeGcs(buckets)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
