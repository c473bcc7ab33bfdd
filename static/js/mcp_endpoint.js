/* The MCP endpoint page: the pass-through address of the picked server, the caller's API token (made, replaced and
 * revoked through /api/auth/my-token/, the key kept in this page's memory only, shown once), and client
 * configurations filled in with the address and, just after it was made, the key. Everything is set as text. */
(function () {
  "use strict";

  var root = document.getElementById("mcp-endpoint");
  if (!root) return;

  var PLACEHOLDER = "<YOUR_TOKEN>";
  var state = {
    exists: root.dataset.tokenExists === "true",
    created: root.dataset.tokenCreated || null,
    key: null, // only between a POST's answer and the next change or reload
  };

  function byId(id) { return document.getElementById(id); }

  function picker() { return byId("server-picker"); }

  function pickedServer() {
    var select = picker();
    return select && select.value ? select.value : null;
  }

  function passthroughUrl(name) { return root.dataset.passthroughBase + encodeURIComponent(name) + "/"; }

  function target() {
    var chosen = document.querySelector("input[name=config-target]:checked");
    var server = pickedServer();
    if (chosen && chosen.value === "passthrough" && server) {
      return { url: passthroughUrl(server), name: "orchestrator-" + server };
    }
    return { url: root.dataset.aggregateUrl, name: "orchestrator" };
  }

  // --- addresses ----------------------------------------------------------------------------------------------

  function drawPicked() {
    var select = picker();
    if (!select) return;
    var option = select.options[select.selectedIndex];
    byId("passthrough-url").textContent = passthroughUrl(select.value);
    var badge = byId("server-status");
    var status = option ? option.dataset.status : "unknown";
    badge.className = "badge status-" + status;
    badge.textContent = status.charAt(0).toUpperCase() + status.slice(1);
  }

  // --- configurations -----------------------------------------------------------------------------------------

  function configs(url, name, token) {
    var bearer = "Bearer " + token;
    var mcpServers = { mcpServers: {} };
    mcpServers.mcpServers[name] = { url: url, headers: { Authorization: bearer } };
    var vscode = { servers: {} };
    vscode.servers[name] = { type: "http", url: url, headers: { Authorization: bearer } };
    var initialize = {
      jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "curl", version: "1.0" } },
    };
    return {
      "config-claude-code": "claude mcp add --transport http " + name + " " + url +
        ' --header "Authorization: ' + bearer + '"',
      "config-mcp-servers": JSON.stringify(mcpServers, null, 2),
      "config-vscode": JSON.stringify(vscode, null, 2),
      "config-python": [
        "import asyncio",
        "",
        "import httpx2",
        "from mcp import Client",
        "from mcp.client.streamable_http import streamable_http_client",
        "",
        "URL = " + JSON.stringify(url),
        "HEADERS = {\"Authorization\": " + JSON.stringify(bearer) + "}",
        "",
        "",
        "async def main() -> None:",
        "    # The SDK's HTTP transport uses httpx2; the long read timeout keeps the server's event stream open.",
        "    async with httpx2.AsyncClient(headers=HEADERS, timeout=httpx2.Timeout(30, read=300)) as http:",
        "        async with Client(streamable_http_client(URL, http_client=http), read_timeout_seconds=60) as client:",
        "            result = await client.list_tools()",
        "            for tool in result.tools:",
        "                print(tool.name)",
        "",
        "",
        "asyncio.run(main())",
      ].join("\n"),
      "config-curl": [
        "curl -sS -X POST '" + url + "' \\",
        "  -H 'Authorization: " + bearer + "' \\",
        "  -H 'Content-Type: application/json' \\",
        "  -H 'Accept: application/json, text/event-stream' \\",
        "  -d '" + JSON.stringify(initialize) + "'",
      ].join("\n"),
    };
  }

  function drawConfigs() {
    var chosen = target();
    var texts = configs(chosen.url, chosen.name, state.key || PLACEHOLDER);
    Object.keys(texts).forEach(function (id) { byId(id).textContent = texts[id]; });
    var note = byId("config-token-note");
    if (state.key) {
      note.textContent = "Your new token is filled in below: anyone who sees these can use the fleet as you.";
    } else {
      note.textContent = "Put your token where it says " + PLACEHOLDER + (state.exists
        ? " (yours was shown once, when it was made; replace it to see a new one)."
        : " (create one above and it is filled in).");
    }
  }

  // --- the token ----------------------------------------------------------------------------------------------

  function when(iso) {
    var date = new Date(iso);
    return isNaN(date.getTime()) ? iso : date.toLocaleString([], {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function drawToken() {
    byId("token-status").textContent = state.exists
      ? "You have an API token, created " + when(state.created) + "."
      : "You have no API token.";
    var create = byId("token-create");
    create.textContent = state.exists ? create.dataset.replace : create.dataset.create;
    byId("token-revoke").hidden = !state.exists;
    byId("token-new").hidden = !state.key;
    byId("token-key").textContent = state.key || "";
    drawConfigs();
  }

  function say(text, ok) {
    var result = byId("token-result");
    result.textContent = text;
    result.className = "form-status " + (ok ? "form-status-ok" : "form-status-error");
  }

  function busy(on) {
    ["token-create", "token-revoke", "token-confirm-yes"].forEach(function (id) { byId(id).disabled = on; });
  }

  function send(method) {
    return fetch(root.dataset.tokenApi, {
      method: method, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": window.OrchestratorDom.csrfToken() },
    }).then(function (response) {
      if (response.status === 204) return { status: 204, json: null };
      return response.json().then(
        function (json) { return { status: response.status, json: json }; },
        function () { return { status: response.status, json: null }; }
      );
    });
  }

  function refusal(answer) {
    var detail = answer.json && answer.json.detail;
    return typeof detail === "string" ? detail : "HTTP " + answer.status;
  }

  function create() {
    busy(true);
    say("Making your token…", true);
    send("POST").then(function (answer) {
      if (answer.status !== 201) throw new Error(refusal(answer));
      var replaced = state.exists;
      state = { exists: true, created: answer.json.created, key: answer.json.key };
      drawToken();
      say(replaced ? "Replaced: the old token no longer works." : "Created.", true);
    }).catch(function (error) {
      say("Could not make a token: " + error.message, false);
    }).then(function () { busy(false); });
  }

  function revoke() {
    busy(true);
    say("Revoking…", true);
    send("DELETE").then(function (answer) {
      if (answer.status !== 204) throw new Error(refusal(answer));
      state = { exists: false, created: null, key: null };
      drawToken();
      say("Revoked: the token no longer works.", true);
    }).catch(function (error) {
      say("Could not revoke the token: " + error.message, false);
    }).then(function () { busy(false); });
  }

  // Replacing or revoking a token breaks every client that uses it: asked once more, on the page.
  var pending = null;
  function confirmFirst(action, question, answer) {
    pending = action;
    byId("token-confirm-text").textContent = question;
    byId("token-confirm-yes").textContent = answer;
    byId("token-confirm").hidden = false;
    byId("token-confirm-yes").focus();
  }

  function closeConfirm() {
    pending = null;
    byId("token-confirm").hidden = true;
  }

  // --- copy buttons -------------------------------------------------------------------------------------------

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copy(button) {
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var text = source.textContent;
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    function shown(message) {
      button.textContent = message;
      window.setTimeout(function () { button.textContent = label; }, 1500);
    }
    function fallback() {
      // No clipboard API (a page not served over https or localhost) or no permission: select it for Ctrl+C.
      selectText(source);
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (ignored) { copied = false; }
      shown(copied ? "Copied" : "Selected: press Ctrl+C");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { shown("Copied"); }, fallback);
    } else {
      fallback();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = picker();
    if (select) {
      select.addEventListener("change", function () { drawPicked(); drawConfigs(); });
      drawPicked();
    }
    document.querySelectorAll("input[name=config-target]").forEach(function (input) {
      input.addEventListener("change", drawConfigs);
    });
    document.querySelectorAll(".copy-button").forEach(function (button) {
      button.addEventListener("click", function () { copy(button); });
    });
    byId("token-create").addEventListener("click", function () {
      if (!state.exists) { closeConfirm(); create(); return; }
      confirmFirst(create, "Replace your token? The one you have stops working at once, in every client that uses it.", "Replace token");
    });
    byId("token-revoke").addEventListener("click", function () {
      confirmFirst(revoke, "Revoke your token? It stops working at once, in every client that uses it.", "Revoke token");
    });
    byId("token-confirm-yes").addEventListener("click", function () {
      var action = pending;
      closeConfirm();
      if (action) action();
    });
    byId("token-confirm-no").addEventListener("click", closeConfirm);
    drawToken();
  });
})();
