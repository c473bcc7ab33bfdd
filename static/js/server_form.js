/* The add / edit server form: builds the definition as the REST API takes it and sends it there.
 *
 *   Test connection  POST /api/servers/test-connection/  (the definition as typed; `server` when editing, so the
 *                    stored secrets fill in for the ones not typed again)
 *   Add server       POST /api/servers/?discover=false   (the server page then shows its discovery live)
 *   Save changes     PATCH /api/servers/<name>/
 * A 400 names its fields: each message is shown at its field. Secrets are write-only: the stored ones are named
 * ("set, hidden") and kept, replaced as a whole, or removed; their values never reach the page.
 * Everything from the server (errors, server names, tool names) is put in with textContent.
 */
(function () {
  "use strict";

  var form = document.getElementById("server-form");
  if (!form) return;
  var dom = window.OrchestratorDom;
  var formError = document.getElementById("form-error");
  var result = document.getElementById("connection-result");
  var testButton = document.getElementById("test-connection");
  var saveButton = document.getElementById("save-server");
  var transportSelect = document.getElementById("field-transport");
  var editing = form.dataset.mode === "edit";
  var storedKeys = {
    headers: (form.dataset.headerKeys || "").split(",").filter(Boolean),
    env: (form.dataset.envKeys || "").split(",").filter(Boolean),
  };

  function value(name) {
    var input = form.elements.namedItem(name);
    return input ? input.value : "";
  }

  // -- secrets: rows of name + value ------------------------------------------------------------------------------

  function addRow(container, name) {
    var template = document.getElementById("secret-row-template");
    var row = template.content.firstElementChild.cloneNode(true);
    var nameInput = row.querySelector(".secret-name");
    nameInput.placeholder = container.dataset.placeholder || "name";
    if (name) nameInput.value = name;
    row.querySelector(".secret-remove").addEventListener("click", function () {
      row.remove();
    });
    container.appendChild(row);
    return row;
  }

  function secretMode(field) {
    var checked = form.querySelector('input[name="' + field + '-mode"]:checked');
    return checked ? checked.value : "new";
  }

  function setUpSecret(box) {
    var field = box.dataset.secret;
    var editor = box.querySelector(".secret-editor");
    var rows = box.querySelector(".secret-rows");
    box.querySelector(".secret-add").addEventListener("click", function () {
      addRow(rows).querySelector(".secret-name").focus();
    });
    box.querySelectorAll('input[name="' + field + '-mode"]').forEach(function (radio) {
      radio.addEventListener("change", function () {
        var mode = secretMode(field);
        editor.hidden = mode !== "replace";
        if (mode === "replace" && !rows.children.length) {
          // The stored names, to be given values again (the old values are never sent to the page).
          storedKeys[field].forEach(function (key) {
            addRow(rows, key);
          });
        }
      });
    });
  }

  // The mapping the rows hold, or undefined to leave the stored one alone. Names are sent as typed (the API says
  // which is wrong); a row with neither name nor value is ignored.
  function secretValue(field) {
    var box = form.querySelector('[data-secret="' + field + '"]');
    if (!box) return undefined;
    var mode = secretMode(field);
    if (mode === "keep") return undefined;
    if (mode === "clear") return {};
    var mapping = {};
    var any = false;
    box.querySelectorAll(".secret-row").forEach(function (row) {
      var name = row.querySelector(".secret-name").value.trim();
      var secret = row.querySelector(".secret-value").value;
      if (!name && !secret) return;
      mapping[name] = secret;
      any = true;
    });
    if (mode === "new" && !any) return undefined;
    return mapping;
  }

  // -- the definition -------------------------------------------------------------------------------------------

  function number(text) {
    // A number when it reads as one; otherwise the text itself, so the API names the field.
    var trimmed = String(text).trim();
    if (trimmed === "") return trimmed;
    var parsed = Number(trimmed);
    return isNaN(parsed) ? trimmed : parsed;
  }

  function definition() {
    var transport = transportSelect.value;
    var body = {
      name: value("name").trim(),
      display_name: value("display_name"),
      description: value("description"),
      transport: transport,
      server_type: value("server_type").trim(),
      tags: value("tags")
        .split(/[\s,]+/)
        .filter(Boolean),
      priority: number(value("priority")),
      request_timeout_seconds: number(value("request_timeout_seconds")),
      max_concurrency: number(value("max_concurrency")),
      enabled: form.elements.namedItem("enabled").checked,
    };
    var metadataText = value("metadata").trim();
    if (metadataText === "") {
      body.metadata = {};
    } else {
      try {
        body.metadata = JSON.parse(metadataText);
      } catch (error) {
        return { error: { metadata: ["Not valid JSON: " + error.message] } };
      }
    }
    var headers = secretValue("headers");
    var env = secretValue("env");
    if (transport === "stdio") {
      body.command = value("command").trim();
      body.args = value("args")
        .split("\n")
        .map(function (line) { return line.replace(/\r$/, ""); })
        .filter(function (line) { return line.trim() !== ""; });
      body.cwd = value("cwd").trim();
      body.url = "";
      if (env !== undefined) body.env = env;
      // Headers belong to HTTP: a server moved to stdio drops the ones it held.
      if (storedKeys.headers.length) body.headers = {};
    } else {
      body.url = value("url").trim();
      body.command = "";
      body.args = [];
      body.cwd = "";
      if (headers !== undefined) body.headers = headers;
      if (storedKeys.env.length) body.env = {};
      var oauth = oauthValue();
      if (oauth !== undefined) body.oauth = oauth;
    }
    return { body: body };
  }

  // The OAuth part: left out while there is none and never was; {} drops it; a blank secret keeps the stored one.
  var oauthSection = document.getElementById("oauth-section");

  function oauthValue() {
    if (!oauthSection) return undefined;
    var grant = value("oauth-grant");
    if (grant === "") return oauthSection.dataset.hadOauth === "true" ? {} : undefined;
    var oauth = { grant: grant, registration: value("oauth-registration") };
    ["client_id", "scope", "issuer", "client_metadata_url"].forEach(function (name) {
      var text = value("oauth-" + name).trim();
      if (text !== "") oauth[name] = text;
    });
    var secret = value("oauth-client_secret");
    if (secret !== "") oauth.client_secret = secret;
    return oauth;
  }

  // "Authorize" right after saving a server whose grant a person approves: the same POST as the server page's button.
  function authorizeAfterSaving(name) {
    var authorize = document.createElement("form");
    authorize.method = "post";
    authorize.action = "/oauth/authorize/" + encodeURIComponent(name) + "/";
    var token = document.createElement("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = dom.csrfToken();
    authorize.appendChild(token);
    document.body.appendChild(authorize);
    authorize.submit();
  }

  // -- errors at their fields -----------------------------------------------------------------------------------

  function clearErrors() {
    formError.hidden = true;
    formError.textContent = "";
    form.querySelectorAll("[data-error-for]").forEach(function (el) {
      el.hidden = true;
      el.textContent = "";
    });
    form.querySelectorAll(".field-invalid").forEach(function (el) {
      el.classList.remove("field-invalid");
    });
  }

  function messagesOf(detail) {
    // DRF: a list of strings, or per item ({"0": [...]}) for list fields, or nested objects.
    if (detail === null || detail === undefined) return [];
    if (typeof detail === "string") return [detail];
    if (Array.isArray(detail)) {
      return detail.reduce(function (all, item) { return all.concat(messagesOf(item)); }, []);
    }
    return Object.keys(detail).reduce(function (all, key) {
      return all.concat(
        messagesOf(detail[key]).map(function (message) {
          return /^\d+$/.test(key) ? "item " + (Number(key) + 1) + ": " + message : key + ": " + message;
        })
      );
    }, []);
  }

  function showErrors(errors) {
    var elsewhere = [];
    Object.keys(errors).forEach(function (field) {
      var messages = messagesOf(errors[field]);
      var target = form.querySelector('[data-error-for="' + field + '"]');
      var box = form.querySelector('[data-field="' + field + '"]');
      if (target && box && !box.closest("[hidden]")) {
        target.textContent = messages.join(" ");
        target.hidden = false;
        box.classList.add("field-invalid");
        var folded = box.closest("details");
        if (folded) folded.open = true;
      } else {
        elsewhere.push((field === "non_field_errors" || field === "detail" ? "" : field + ": ") + messages.join(" "));
      }
    });
    formError.textContent = elsewhere.length
      ? elsewhere.join(" ")
      : "Please correct the marked fields.";
    formError.hidden = false;
    var first = form.querySelector(".field-invalid input, .field-invalid select, .field-invalid textarea");
    if (first) first.focus();
  }

  function refused(response) {
    var detail = response.json && (response.json.detail || response.json.error);
    formError.textContent = detail || "The request failed (HTTP " + response.status + ").";
    formError.hidden = false;
  }

  // -- transport sections ---------------------------------------------------------------------------------------

  function showTransport() {
    var chosen = transportSelect.value;
    form.querySelectorAll(".transport-section").forEach(function (section) {
      section.hidden = section.dataset.transports.split(" ").indexOf(chosen) < 0;
    });
  }

  // -- requests -------------------------------------------------------------------------------------------------

  function send(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": dom.csrfToken() },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response
        .json()
        .catch(function () { return {}; })
        .then(function (json) { return { status: response.status, json: json }; });
    });
  }

  function line(parent, className, text) {
    var p = document.createElement("p");
    if (className) p.className = className;
    p.textContent = text;
    parent.appendChild(p);
    return p;
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function showConnection(report) {
    result.replaceChildren();
    result.hidden = false;
    result.dataset.ok = report.ok ? "true" : "false";
    var seconds = " (" + Math.round(report.elapsed_ms) + " ms)";
    if (!report.ok) {
      line(result, "connection-verdict", "Could not connect" + seconds);
      line(result, "error-text", report.error || "no reason given");
      return;
    }
    line(result, "connection-verdict", "Connected" + seconds);
    var facts = document.createElement("dl");
    facts.className = "facts";
    function fact(term, text) {
      var dt = document.createElement("dt");
      dt.textContent = term;
      var dd = document.createElement("dd");
      dd.textContent = text;
      facts.append(dt, dd);
    }
    fact("Server", ((report.server_name || "unnamed") + " " + (report.server_version || "")).trim());
    fact("Protocol", report.protocol_version || "–");
    var counts = report.counts || {};
    fact(
      "Offers",
      [
        plural(counts.tools || 0, "tool"),
        plural(counts.resources || 0, "resource"),
        plural(counts.resource_templates || 0, "resource template"),
        plural(counts.prompts || 0, "prompt"),
      ].join(", ")
    );
    if (report.tool_names && report.tool_names.length) {
      var more = (counts.tools || 0) > report.tool_names.length ? ", …" : "";
      fact("Tools", report.tool_names.join(", ") + more);
    }
    result.appendChild(facts);
    Object.keys(report.truncated || {}).forEach(function (listing) {
      line(result, "subtle", listing + ": " + report.truncated[listing]);
    });
  }

  function busy(button, text) {
    var label = button.textContent;
    button.disabled = true;
    button.textContent = text;
    return function () {
      button.disabled = false;
      button.textContent = label;
    };
  }

  testButton.addEventListener("click", function () {
    clearErrors();
    var built = definition();
    if (built.error) return showErrors(built.error);
    var body = built.body;
    if (editing) body.server = form.dataset.server;
    var done = busy(testButton, "Testing…");
    result.hidden = false;
    result.replaceChildren();
    line(result, "subtle", "Connecting and listing what it offers…");
    send("POST", form.dataset.testApi, body)
      .then(function (response) {
        if (response.status === 200) return showConnection(response.json);
        result.hidden = true;
        if (response.status === 400) return showErrors(response.json);
        refused(response);
      })
      .catch(function (error) {
        result.hidden = true;
        formError.textContent = "The test could not be sent: " + error.message;
        formError.hidden = false;
      })
      .then(done);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors();
    var built = definition();
    if (built.error) return showErrors(built.error);
    var done = busy(saveButton, "Saving…");
    var request = editing
      ? send("PATCH", form.dataset.api, built.body)
      : send("POST", form.dataset.api + "?discover=false", built.body);
    request
      .then(function (response) {
        if (response.status === 200 || response.status === 201) {
          var saved = response.json;
          var needsPerson = saved.oauth && saved.oauth.grant === "authorization_code" && !saved.oauth.grant_state.authorized;
          if (needsPerson && built.body.oauth && built.body.transport !== "stdio") return authorizeAfterSaving(saved.name);
          window.location.assign("/servers/" + encodeURIComponent(saved.name) + "/");
          return;
        }
        done();
        if (response.status === 400) return showErrors(response.json);
        refused(response);
      })
      .catch(function (error) {
        done();
        formError.textContent = "The change could not be sent: " + error.message;
        formError.hidden = false;
      });
  });

  form.querySelectorAll("[data-secret]").forEach(setUpSecret);
  transportSelect.addEventListener("change", showTransport);
  showTransport();
  // Enabled only now that this script handles them: a click before would submit the form as a page load.
  if (!form.querySelector("fieldset").disabled) {
    testButton.disabled = false;
    saveButton.disabled = false;
  }
})();
