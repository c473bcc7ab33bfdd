"""An MCP server behind OAuth with its own small authorization server, on one port of 127.0.0.1.

Run: ``python tests/mcp_servers/oauth_protected.py --port N [--token-seconds 2] [--client-secret S] [--issuer-host H]``.

- The MCP server (SDK MCPServer, `/mcp`) accepts only access tokens this authorization server issued and that have
  not expired; it publishes its protected resource metadata and answers 401 with `WWW-Authenticate` as the MCP
  authorization spec says. Tools: `echo(text)`, `counter()`.
- The authorization server (issuer = the base URL): RFC 8414 metadata, dynamic client registration, an authorization
  endpoint that approves at once (redirects to the client's redirect URI with code, state and iss, as the
  conformance suite's does), and a token endpoint for authorization_code (PKCE S256 checked), refresh_token
  (rotated: each refresh token works once) and client_credentials (the pre-registered client `svc`).
- For the tests: `POST /admin/revoke` revokes every refresh token (access tokens run out on their own),
  `POST /admin/forget-access` every access token (a server restarted without its token store);
  `GET /admin/stats` counts the grants issued by type (never the tokens themselves).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

SERVICE_CLIENT_ID = "svc"


class AuthorizationServer:
    def __init__(self, base_url: str, token_seconds: int, service_secret: str) -> None:
        self.base_url = base_url
        self.token_seconds = token_seconds
        self.clients: dict[str, dict[str, Any]] = {
            SERVICE_CLIENT_ID: {"client_secret": service_secret, "grant_types": ["client_credentials"]}
        }
        self.codes: dict[str, dict[str, Any]] = {}
        self.access: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires_at)
        self.refresh: dict[str, str] = {}  # token -> client_id
        self.issued: dict[str, int] = {"authorization_code": 0, "refresh_token": 0, "client_credentials": 0}
        self.refused: dict[str, int] = {"refresh_token": 0}

    # -- the resource server's side --

    async def verify_token(self, token: str) -> AccessToken | None:
        found = self.access.get(token)
        if found is None or found[1] < time.time():
            return None
        return AccessToken(token=token, client_id=found[0], scopes=["mcp"], expires_at=int(found[1]))

    # -- endpoints --

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.base_url,
                "authorization_endpoint": f"{self.base_url}/authorize",
                "token_endpoint": f"{self.base_url}/token",
                "registration_endpoint": f"{self.base_url}/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "scopes_supported": ["mcp"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def register(self, request: Request) -> Response:
        body = await request.json()
        client_id = f"dyn-{secrets.token_hex(6)}"
        method = body.get("token_endpoint_auth_method") or "client_secret_basic"
        client: dict[str, Any] = {"redirect_uris": body.get("redirect_uris", []), "grant_types": ["authorization_code"]}
        answer = {**body, "client_id": client_id, "token_endpoint_auth_method": method}
        if method != "none":
            client["client_secret"] = answer["client_secret"] = secrets.token_urlsafe(24)
        self.clients[client_id] = client
        return JSONResponse(answer, status_code=201)

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client.get("redirect_uris", []):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "client_id": query["client_id"],
            "challenge": query.get("code_challenge", ""),
            "redirect_uri": redirect_uri,
        }
        params = {"code": code, "state": query.get("state", ""), "iss": self.base_url}
        return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

    def _client_of(self, request: Request, form: Any) -> str | None:
        """The authenticated client (basic or post), or a public client by id; None when the secret is wrong."""
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None or client.get("client_secret", "") != secret:
            return None
        return client_id

    def _tokens(self, client_id: str, grant: str, *, with_refresh: bool) -> Response:
        access = secrets.token_urlsafe(24)
        self.access[access] = (client_id, time.time() + self.token_seconds)
        self.issued[grant] += 1
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_seconds,
            "scope": "mcp",
        }
        if with_refresh:
            refresh = secrets.token_urlsafe(24)
            self.refresh[refresh] = client_id
            answer["refresh_token"] = refresh
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def token(self, request: Request) -> Response:
        form = await request.form()
        client_id = self._client_of(request, form)
        if client_id is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = self.codes.pop(str(form.get("code", "")), None)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if code is None or code["client_id"] != client_id or code["challenge"] != challenge:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return self._tokens(client_id, "authorization_code", with_refresh=True)
        if grant == "refresh_token":
            owner = self.refresh.pop(str(form.get("refresh_token", "")), None)
            if owner != client_id:
                self.refused["refresh_token"] += 1
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            return self._tokens(client_id, "refresh_token", with_refresh=True)
        if grant == "client_credentials" and client_id == SERVICE_CLIENT_ID:
            return self._tokens(client_id, "client_credentials", with_refresh=False)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    async def revoke_all(self, request: Request) -> Response:
        self.refresh.clear()
        return JSONResponse({"revoked": True})

    async def forget_access(self, request: Request) -> Response:
        self.access.clear()
        return JSONResponse({"forgotten": True})

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"issued": self.issued, "refused": self.refused, "clients": len(self.clients)})


def build_app(port: int, token_seconds: int, service_secret: str, issuer_host: str = "127.0.0.1") -> Any:
    base_url = f"http://127.0.0.1:{port}"
    # Where the protected resource metadata says the authorization server is (another host: a policy test).
    issuer = f"http://{issuer_host}:{port}"
    authorization = AuthorizationServer(issuer, token_seconds, service_secret)
    server = MCPServer(
        "oauth-protected",
        token_verifier=authorization,
        auth=AuthSettings(issuer_url=issuer, resource_server_url=f"{base_url}/mcp", validate_token_resource=False),
    )
    calls = {"count": 0}

    @server.tool()
    def echo(text: str) -> str:
        """Say it back."""
        return text

    @server.tool()
    def counter() -> int:
        """How many times it was called."""
        calls["count"] += 1
        return calls["count"]

    app = server.streamable_http_app()
    app.router.routes[0:0] = [
        Route("/.well-known/oauth-authorization-server", authorization.metadata, methods=["GET"]),
        Route("/register", authorization.register, methods=["POST"]),
        Route("/authorize", authorization.authorize, methods=["GET"]),
        Route("/token", authorization.token, methods=["POST"]),
        Route("/admin/revoke", authorization.revoke_all, methods=["POST"]),
        Route("/admin/forget-access", authorization.forget_access, methods=["POST"]),
        Route("/admin/stats", authorization.stats, methods=["GET"]),
    ]
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-seconds", type=int, default=2)
    parser.add_argument("--client-secret", default="service-secret-for-tests")
    parser.add_argument("--issuer-host", default="127.0.0.1", help="The host the metadata names for the AS.")
    parser.add_argument("--marker", default="")
    args = parser.parse_args()
    app = build_app(args.port, args.token_seconds, args.client_secret, args.issuer_host)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
