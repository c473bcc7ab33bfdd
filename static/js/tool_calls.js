/* Tool calls, resource reads and prompts from the server page (operators and admins).
 *
 * Each tool's form is built from its JSON input schema (kept in the page as <script id="tool-schemas">): a field per
 * property (text, number, checkbox, a choice for enums, JSON for arrays and objects), defaults filled in, required
 * fields marked. Submitting posts to the REST API (POST /api/servers/<name>/call/, session auth + CSRF) and shows
 * the result in place: structured content or text, the error flag, latency, or the field errors the API names.
 * A resource read shows JSON pretty-printed and text as text. A prompt's form (its declared arguments, rendered by
 * the template) posts to /api/servers/<name>/prompt/ and shows the rendered messages, each with its role, as text.
 *
 * A tool call runs with a correlation id made here: while it runs, the form shows a progress bar fed by the call's
 * `calls.progress` events on /ws/events/ (one socket for the page, opened at the first call, filtered to this server;
 * the server's message set as text) and a "Cancel" button that posts /api/calls/<correlation_id>/cancel/; a cancelled
 * call answers 409 with who cancelled it, shown like any failed call.
 */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var csrfToken = dom.csrfToken;

  var head = document.querySelector(".server-head[data-api]");
  if (!head) return;
  var apiBase = head.dataset.api; // /api/servers/<name>/
  var schemas = {};
  try {
    schemas = JSON.parse(document.getElementById("tool-schemas").textContent || "{}");
  } catch (error) {
    schemas = {};
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function kindOf(property) {
    var type = property.type;
    if (Array.isArray(type)) type = type.filter(function (t) { return t !== "null"; })[0];
    if (!type && property.anyOf) {
      var options = property.anyOf.filter(function (option) { return option.type && option.type !== "null"; });
      if (options.length === 1) return kindOf(options[0]);
    }
    if (property.enum) return "enum";
    return type || "json";
  }

  function fieldFor(name, property, required) {
    var id = "arg-" + Math.random().toString(36).slice(2);
    var kind = kindOf(property);
    var input;
    if (kind === "enum") {
      input = el("select", { id: id });
      if (!required) input.appendChild(el("option", { value: "", text: "(not set)" }));
      property.enum.forEach(function (value) {
        var option = el("option", { value: JSON.stringify(value), text: String(value) });
        if (property.default !== undefined && JSON.stringify(property.default) === JSON.stringify(value)) {
          option.selected = true;
        }
        input.appendChild(option);
      });
    } else if (kind === "boolean") {
      input = el("input", { id: id, type: "checkbox" });
      input.checked = property.default === true;
    } else if (kind === "integer" || kind === "number") {
      input = el("input", { id: id, type: "number", step: kind === "integer" ? "1" : "any", inputmode: "decimal" });
      if (property.minimum !== undefined) input.min = property.minimum;
      if (property.maximum !== undefined) input.max = property.maximum;
      if (property.default !== undefined && property.default !== null) input.value = property.default;
    } else if (kind === "string") {
      input = el("input", { id: id, type: "text", autocomplete: "off" });
      if (property.default !== undefined && property.default !== null) input.value = property.default;
    } else {
      input = el("textarea", { id: id, rows: "3", spellcheck: "false", placeholder: "JSON" });
      if (property.default !== undefined) input.value = JSON.stringify(property.default);
    }
    input.dataset.kind = kind;
    input.dataset.name = name;
    var label = el("label", { for: id }, [
      el("code", { text: name }),
      required ? el("span", { className: "required", title: "required", text: "*" }) : null,
      el("span", { className: "subtle", text: " " + (Array.isArray(property.type) ? property.type.join("|") : property.type || kind) }),
    ]);
    var help = property.description ? el("span", { className: "subtle field-help", text: property.description }) : null;
    return el("div", { className: "field", "data-field": name }, [label, input, help, el("p", { className: "field-error" })]);
  }

  function buildForm(form) {
    var schema = schemas[form.dataset.tool] || {};
    var properties = schema.properties || {};
    var required = schema.required || [];
    var fields = form.querySelector(".call-fields");
    var names = Object.keys(properties);
    if (!names.length) {
      fields.appendChild(el("p", { className: "subtle", text: "This tool takes no arguments." }));
    }
    names.forEach(function (name) {
      fields.appendChild(fieldFor(name, properties[name] || {}, required.indexOf(name) !== -1));
    });
  }

  function readArguments(form) {
    var args = {};
    var problems = {};
    form.querySelectorAll("[data-name]").forEach(function (input) {
      var name = input.dataset.name;
      var kind = input.dataset.kind;
      if (kind === "boolean") {
        args[name] = input.checked;
        return;
      }
      var raw = input.value;
      if (raw === "") return; // not given: the schema's required check (server side) speaks for it
      if (kind === "integer" || kind === "number") {
        var number = Number(raw);
        if (isNaN(number)) problems[name] = ["Not a number."];
        else args[name] = number;
      } else if (kind === "enum") {
        args[name] = JSON.parse(raw);
      } else if (kind === "string") {
        args[name] = raw;
      } else {
        try {
          args[name] = JSON.parse(raw);
        } catch (error) {
          problems[name] = ["Not valid JSON: " + error.message];
        }
      }
    });
    return { args: args, problems: problems };
  }

  function showFieldErrors(form, errors) {
    form.querySelectorAll(".field").forEach(function (field) {
      var messages = errors[field.dataset.field];
      field.classList.toggle("field-invalid", !!messages);
      field.querySelector(".field-error").textContent = messages ? messages.join(" ") : "";
    });
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  // Text that is JSON (a JSON MIME type, or text that parses as an object or array) shown pretty-printed; other
  // text as it came; binary content named with its type and size, not dumped.
  function formattedText(text, mimeType) {
    var looksJson = /json/i.test(mimeType || "") || /^\s*[\[{]/.test(text);
    if (looksJson) {
      try {
        return { text: pretty(JSON.parse(text)), json: true };
      } catch (error) {
        // Not JSON after all: as text.
      }
    }
    return { text: text, json: false };
  }

  function contentBlock(item) {
    var mimeType = item.mimeType || item.mime_type || "";
    if (item.text !== undefined) {
      var shown = formattedText(String(item.text), mimeType);
      var block = el("div", { className: "content-block" }, [
        mimeType || item.uri ? el("p", { className: "subtle content-meta", text: [item.uri, mimeType].filter(Boolean).join(" · ") }) : null,
        el("pre", { className: shown.json ? "content-json" : "content-text" }, [el("code", { text: shown.text })]),
      ]);
      return block;
    }
    if (item.blob !== undefined || item.data !== undefined) {
      var data = item.blob !== undefined ? item.blob : item.data;
      var bytes = Math.floor((String(data).length * 3) / 4);
      return el("p", { className: "subtle", text: "Binary content (" + (mimeType || item.type || "unknown type") + ", about " + bytes + " bytes): not shown." });
    }
    if (item.type === "resource" && item.resource) return contentBlock(item.resource);
    if (item.type === "resource_link") {
      return el("p", { className: "subtle", text: "Link to resource " + (item.uri || "") + (item.name ? " (" + item.name + ")" : "") });
    }
    return el("pre", {}, [el("code", { text: pretty(item) })]);
  }

  // A rendered prompt: its description, then each message with its role and its content as text.
  function renderMessages(box, result) {
    if (result.description) box.appendChild(el("p", { className: "prompt-description", text: result.description }));
    (result.messages || []).forEach(function (message) {
      box.appendChild(
        el("div", { className: "prompt-message prompt-role-" + (message.role === "assistant" ? "assistant" : "user") }, [
          el("p", { className: "prompt-role", text: message.role }),
          contentBlock(message.content || {}),
        ])
      );
    });
    if (!(result.messages || []).length) box.appendChild(el("p", { className: "subtle", text: "(no messages)" }));
  }

  function renderOutcome(outcome) {
    if (!outcome) return null;
    var text = Math.round(outcome.latency_ms * 10) / 10 + " ms";
    if (outcome.error_kind) text += " · " + outcome.error_kind;
    return el("p", { className: "subtle call-outcome", text: text });
  }

  function renderResult(box, payload, ok) {
    box.hidden = false;
    box.textContent = "";
    box.className = "call-result" + (ok ? "" : " call-result-error");
    var result = payload.result;
    if (result && result.is_error) box.classList.add("call-result-error");
    if (!result) {
      box.appendChild(el("p", { className: "error-text", text: payload.detail || "The call failed." }));
    } else if (result.structured_content) {
      box.appendChild(el("pre", {}, [el("code", { text: pretty(result.structured_content) })]));
    } else if (result.messages) {
      renderMessages(box, result);
    } else {
      var items = result.content || result.contents || [];
      items.forEach(function (item) {
        box.appendChild(contentBlock(item));
      });
      if (!items.length) box.appendChild(el("p", { className: "subtle", text: "(empty result)" }));
    }
    if (result && result.is_error) box.insertBefore(el("p", { className: "error-text", text: "The tool reported an error:" }), box.firstChild);
    var outcome = renderOutcome(payload.outcome);
    if (outcome) box.appendChild(outcome);
  }

  function post(path, body) {
    return fetch(apiBase + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response
        .json()
        .catch(function () { return { detail: "HTTP " + response.status }; })
        .then(function (payload) { return { status: response.status, payload: payload }; });
    });
  }

  // -- progress and cancellation of running tool calls ------------------------------------------------------------

  var serverName = head.dataset.server;
  var running = {}; // correlation id -> {bar, note}
  var progressSocket = null;

  function newCorrelationId() {
    if (window.crypto && window.crypto.getRandomValues) {
      var bytes = new Uint8Array(12);
      window.crypto.getRandomValues(bytes);
      return "page-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    return "page-" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function onProgress(event) {
    var payload = event.payload || {};
    var shown = running[payload.correlation_id];
    if (!shown) return;
    var progress = Number(payload.progress);
    var total = payload.total === null || payload.total === undefined ? null : Number(payload.total);
    if (total !== null && isFinite(total) && total > 0) {
      shown.bar.max = total;
      shown.bar.value = Math.min(Math.max(progress, 0), total);
      shown.bar.textContent = Math.round((shown.bar.value / total) * 100) + "%";
    } else {
      shown.bar.removeAttribute("value"); // indeterminate: the server gave no total
    }
    var text = total !== null && isFinite(total) ? progress + " / " + total : String(progress);
    if (payload.message) text += " · " + payload.message;
    shown.note.textContent = text; // the server's own words: text, never markup
  }

  function followProgress() {
    if (progressSocket || !window.OrchestratorEvents) return;
    progressSocket = window.OrchestratorEvents.connect({
      streams: ["calls.progress"],
      servers: serverName ? [serverName] : null,
      onEvent: onProgress,
    });
  }

  function showRunning(form, correlationId) {
    var actions = form.querySelector(".call-actions");
    var bar = el("progress", { className: "call-progress", "aria-label": "Progress of the call" });
    var note = el("span", { className: "call-progress-note subtle" });
    var cancel = el("button", { type: "button", className: "button call-cancel", text: "Cancel" });
    cancel.addEventListener("click", function () {
      cancel.disabled = true;
      note.textContent = "cancelling…";
      fetch("/api/calls/" + encodeURIComponent(correlationId) + "/cancel/", {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      })
        .then(function (response) {
          if (response.status === 202) return;
          return response
            .json()
            .catch(function () { return { detail: "HTTP " + response.status }; })
            .then(function (payload) {
              // 404: it finished meanwhile (its answer is on its way); 403: not ours to cancel.
              note.textContent = payload.detail || "Could not cancel (HTTP " + response.status + ").";
            });
        })
        .catch(function (error) {
          note.textContent = "Could not reach the orchestrator: " + error.message;
        });
    });
    var holder = el("div", { className: "call-running" }, [bar, cancel, note]);
    actions.parentNode.insertBefore(holder, actions.nextSibling);
    running[correlationId] = { bar: bar, note: note };
    return function done() {
      delete running[correlationId];
      holder.remove();
    };
  }

  function onSubmit(event) {
    event.preventDefault();
    var form = event.target;
    var status = form.querySelector(".call-status");
    var box = form.parentNode.querySelector(".call-result");
    var read = readArguments(form);
    showFieldErrors(form, read.problems);
    if (Object.keys(read.problems).length) return;
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "calling…";
    followProgress();
    var correlationId = newCorrelationId();
    var done = showRunning(form, correlationId);
    post("call/", { tool: form.dataset.tool, arguments: read.args, correlation_id: correlationId })
      .then(function (answer) {
        status.textContent = "";
        if (answer.status === 400) {
          var errors = answer.payload.arguments || {};
          showFieldErrors(form, typeof errors === "object" && !Array.isArray(errors) ? errors : {});
          var other = answer.payload.tool || answer.payload.enabled || (Array.isArray(errors) ? errors : null);
          renderResult(box, { detail: other ? [].concat(other).join(" ") : "Some arguments are not right: see the fields." }, false);
          return;
        }
        showFieldErrors(form, {});
        renderResult(box, answer.payload, answer.status === 200);
      })
      .catch(function (error) {
        status.textContent = "";
        renderResult(box, { detail: "Could not reach the orchestrator: " + error.message }, false);
      })
      .finally(function () {
        done();
        button.disabled = false;
      });
  }

  function onRead(event) {
    var button = event.target;
    var uri = button.dataset.uri;
    var row = Array.prototype.find.call(document.querySelectorAll("tr.read-row"), function (candidate) {
      return candidate.dataset.uri === uri;
    });
    if (!row) return;
    var box = row.querySelector(".call-result");
    row.hidden = false;
    button.disabled = true;
    post("read/", { uri: uri })
      .then(function (answer) {
        renderResult(box, answer.payload, answer.status === 200);
      })
      .catch(function (error) {
        renderResult(box, { detail: "Could not reach the orchestrator: " + error.message }, false);
      })
      .finally(function () {
        button.disabled = false;
      });
  }

  function onPrompt(event) {
    event.preventDefault();
    var form = event.target;
    var status = form.querySelector(".call-status");
    var box = form.parentNode.querySelector(".call-result");
    var args = {};
    var problems = {};
    form.querySelectorAll("[data-argument]").forEach(function (input) {
      if (input.value !== "") args[input.dataset.argument] = input.value;
      else if (input.hasAttribute("data-required")) problems[input.dataset.argument] = ["This field is required."];
    });
    showFieldErrors(form, problems);
    if (Object.keys(problems).length) return;
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "running…";
    post("prompt/", { prompt: form.dataset.prompt, arguments: args })
      .then(function (answer) {
        status.textContent = "";
        if (answer.status === 400) {
          var errors = answer.payload.arguments || {};
          showFieldErrors(form, typeof errors === "object" && !Array.isArray(errors) ? errors : {});
          var other = answer.payload.prompt || answer.payload.enabled || answer.payload.server;
          renderResult(box, { detail: other ? [].concat(other).join(" ") : "Some arguments are not right: see the fields." }, false);
          return;
        }
        showFieldErrors(form, {});
        renderResult(box, answer.payload, answer.status === 200);
      })
      .catch(function (error) {
        status.textContent = "";
        renderResult(box, { detail: "Could not reach the orchestrator: " + error.message }, false);
      })
      .finally(function () {
        button.disabled = false;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.prompt-form").forEach(function (form) {
      form.addEventListener("submit", onPrompt);
    });
    document.querySelectorAll("form.call-form").forEach(function (form) {
      buildForm(form);
      form.addEventListener("submit", onSubmit);
    });
    document.querySelectorAll("button.read-button").forEach(function (button) {
      button.addEventListener("click", onRead);
    });
  });
})();
