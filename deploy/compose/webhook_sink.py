"""A webhook receiver for the compose setup: prints each alert POST as one JSON line.

Run by the `webhook-sink` service (`docker compose logs -f webhook-sink`).  It checks
`X-Ingest-Signature` against $INGEST_WEBHOOK_SECRET with the verifier from README.md,
"Webhooks", and answers 204 (401 when the signature is wrong).  Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    fields = [item.strip().partition("=") for item in header.split(",")]
    t = next((value for key, _, value in fields if key == "t"), "")
    if not (t.isascii() and t.isdigit()) or abs(time.time() - int(t)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(key == "v1" and hmac.compare_digest(mac.encode(), value.encode())
               for key, _, value in fields)


class Handler(BaseHTTPRequestHandler):
    secret = os.environ.get("INGEST_WEBHOOK_SECRET", "")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        signed = verify(self.secret, self.headers.get("X-Ingest-Signature", ""), body)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        print(json.dumps({"path": self.path, "signature_ok": signed,
                          "idempotency_key": self.headers.get("Idempotency-Key"),
                          "payload": payload}), flush=True)
        self.send_response(204 if signed or not self.secret else 401)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # the JSON line is enough
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
