"""Runs oidc-provider-mock (a real OIDC provider: discovery, authorize, token, userinfo, JWKS) in this process.

    python -m tests.oidc.provider            # prints "port N" once it listens on 127.0.0.1:N

Users and their claims (groups among them) are set per test with the provider's own `PUT /users/<sub>`.
One test hook, `PUT /_test/fault` with `{"fault": NAME}`, makes the token endpoint answer a faulty ID token,
signed with the provider's own key unless the fault is the signature itself, for the tests that prove the
portal refuses it: "audience" (issued to another client), "expired" (exp an hour ago), "signature" (the
signature bytes altered); "" clears it.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on 127.0.0.1

import flask  # noqa: E402
import oidc_provider_mock  # noqa: E402
import werkzeug.serving  # noqa: E402
from authlib.jose import jwt  # noqa: E402

FAULTS = {"", "audience", "expired", "signature"}
state = {"fault": ""}


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def faulty_id_token(id_token: str, fault: str) -> str:
    header_part, claims_part, signature = id_token.split(".")
    header, claims = _b64json(header_part), _b64json(claims_part)
    if fault == "signature":
        flipped = "A" if signature[0] != "A" else "B"
        return f"{header_part}.{claims_part}.{flipped}{signature[1:]}"
    now = int(time.time())
    if fault == "audience":
        claims["aud"] = "some-other-client"
    elif fault == "expired":
        claims["iat"], claims["exp"] = now - 7200, now - 3600
    key = flask.g.oidc_provider_mock_storage.jwk
    return jwt.encode(header, claims, key).decode()


def make_app() -> flask.Flask:
    app = oidc_provider_mock.app()

    @app.put("/_test/fault")
    def set_fault():
        fault = (flask.request.get_json(silent=True) or {}).get("fault", "")
        if fault not in FAULTS:
            return {"error": f"unknown fault {fault!r}"}, 400
        state["fault"] = fault
        return "", 204

    @app.after_request
    def inject_fault(response: flask.Response) -> flask.Response:
        if flask.request.path != "/oauth2/token" or not state["fault"] or response.status_code != 200:
            return response
        body = response.get_json()
        body["id_token"] = faulty_id_token(body["id_token"], state["fault"])
        response.set_data(json.dumps(body))
        return response

    return app


def main() -> None:
    server = werkzeug.serving.make_server("127.0.0.1", 0, make_app(), threaded=True)
    print(f"port {server.server_port}", flush=True)
    os.dup2(2, 1)  # the parent reads only that line: anything printed later goes to the log, never a full pipe
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
