/* The alerting page: silences, maintenance windows, alert rules and notification channels, each listed, created,
 * edited and ended or deleted through the REST API (the API's validation and roles are the page's: a 400's field
 * errors are shown at their fields, a 403 or 409 beside the button). Forms exist only for the roles that may write
 * (the template leaves them out for the others). Silences are prefilled from ?rule=<id>&server=<name> (the health
 * page's "Silence…" link). Everything that comes from the API is set with textContent; secrets never come back.
 */
(function () {
  "use strict";

  var root = document.getElementById("alerting");
  if (!root) return;
  var dom = window.OrchestratorDom;
  var canOperate = root.dataset.canOperate === "true";
  var canAdmin = root.dataset.canAdmin === "true";

  var rules = []; // as /api/alerts/rules/ lists them

  // -- small helpers ----------------------------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function when(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  // An ISO time as a datetime-local input's value (local time, to the minute), and back.
  function toLocalInput(date) {
    var d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 16);
  }
  function fromLocalInput(value) {
    if (!value) return null;
    var d = new Date(value); // "YYYY-MM-DDTHH:MM" without a zone is read as local time
    return isNaN(d.getTime()) ? value : d.toISOString();
  }

  function request(method, url, body) {
    var options = {
      method: method, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": dom.csrfToken() },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (r) {
      if (r.status === 204) return { status: r.status, json: {} };
      return r.json().then(
        function (json) { return { status: r.status, json: json }; },
        function () { return { status: r.status, json: { detail: "HTTP " + r.status } }; }
      );
    });
  }

  function list(url) {
    return dom.getJSON(url).then(function (page) { return page.results || page; });
  }

  function messages(value) {
    if (Array.isArray(value)) return value.map(messages).join(" ");
    if (value && typeof value === "object") return Object.keys(value).map(function (k) { return messages(value[k]); }).join(" ");
    return String(value);
  }

  // -- forms: field errors, edit mode -----------------------------------------------------------------------------

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach(function (p) { p.hidden = true; p.textContent = ""; });
    form.querySelectorAll(".field-invalid").forEach(function (f) { f.classList.remove("field-invalid"); });
    form.querySelector(".form-status").textContent = "";
  }

  // A 400's body names fields; each message goes under its field (the rest, e.g. "detail", beside the button).
  function showErrors(form, response) {
    var leftover = [];
    var body = response.json || {};
    if (response.status !== 400 || typeof body !== "object" || Array.isArray(body)) {
      leftover.push(body.detail || messages(body) || "HTTP " + response.status);
    } else {
      Object.keys(body).forEach(function (field) {
        var target = form.querySelector('[data-error-for="' + field + '"]');
        if (!target) { leftover.push(field + ": " + messages(body[field])); return; }
        target.textContent = messages(body[field]);
        target.hidden = false;
        var wrap = target.closest(".field");
        if (wrap) wrap.classList.add("field-invalid");
      });
    }
    var status = form.querySelector(".form-status");
    status.textContent = leftover.length ? leftover.join(" ") : "Please fix the fields marked above.";
    status.className = "form-status form-status-error";
  }

  function setEditing(form, id) {
    form.dataset.editing = id ? String(id) : "";
    var title = form.querySelector("[data-form-title]");
    var submit = form.querySelector("[data-submit]");
    title.textContent = id ? title.dataset.edit : title.dataset.new;
    submit.textContent = id ? submit.dataset.edit : submit.dataset.new;
    form.querySelector("[data-cancel]").hidden = !id;
  }

  function selected(select) {
    return Array.prototype.filter.call(select.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
  }
  function select(selectEl, values) {
    Array.prototype.forEach.call(selectEl.options, function (o) { o.selected = values.indexOf(o.value) !== -1; });
  }
  // A select's value, adding the option if the list does not have it (e.g. a server removed since).
  function setSelect(selectEl, value) {
    value = value || "";
    var found = Array.prototype.some.call(selectEl.options, function (o) { return o.value === value; });
    if (!found) selectEl.appendChild(new Option(value, value));
    selectEl.value = value;
  }
  function number(value) {
    return value === "" ? null : Number(value);
  }

  // Wires a form: submit sends POST (new) or PATCH (editing) through `bodyOf`, then `done` reloads the lists.
  function wireForm(form, url, bodyOf, reset, done, noun) {
    // The button starts disabled in the page: a click before this script handles the submit would send the form
    // as a GET to the page itself.
    form.querySelector("[data-submit]").disabled = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors(form);
      var id = form.dataset.editing;
      var submit = form.querySelector("[data-submit]");
      submit.disabled = true;
      request(id ? "PATCH" : "POST", id ? url + id + "/" : url, bodyOf(form, Boolean(id)))
        .then(function (response) {
          if (response.status === 200 || response.status === 201) {
            reset(form);
            setEditing(form, null);
            var status = form.querySelector(".form-status");
            status.textContent = (id ? "Saved " : "Made ") + noun + ".";
            status.className = "form-status form-status-ok";
            done();
          } else {
            showErrors(form, response);
          }
        })
        .catch(function (error) { showErrors(form, { status: 0, json: { detail: error.message } }); })
        .then(function () { submit.disabled = false; });
    });
    form.querySelector("[data-cancel]").addEventListener("click", function () {
      clearErrors(form);
      reset(form);
      setEditing(form, null);
    });
  }

  // A row's button that posts (or deletes) and reloads; its outcome beside it.
  function actionButton(label, method, url, after, note) {
    var button = el("button", "button button-quiet", label);
    button.type = "button";
    button.addEventListener("click", function () {
      button.disabled = true;
      note.textContent = "";
      request(method, url).then(function (response) {
        if (response.status >= 200 && response.status < 300) { after(response.json); return; }
        note.textContent = label + ": " + (response.json.detail || messages(response.json));
        button.disabled = false;
      }).catch(function (error) {
        note.textContent = label + ": " + error.message;
        button.disabled = false;
      });
    });
    return button;
  }

  function row(titleParts, details, className) {
    var li = el("li", "alerting-item" + (className ? " " + className : ""));
    var head = el("div", "alerting-item-head");
    titleParts.forEach(function (part) { head.appendChild(part); });
    li.appendChild(head);
    details.forEach(function (text) { if (text) li.appendChild(el("div", "muted alerting-detail", text)); });
    return li;
  }

  function stateBadge(state) {
    return el("span", "alerting-state alerting-state-" + state, state);
  }

  function empty(listEl, text) {
    listEl.textContent = "";
    listEl.appendChild(el("li", "muted", text));
  }

  function failed(listEl, what) {
    return function (error) { empty(listEl, "Could not load " + what + ": " + error.message); };
  }

  // -- silences ----------------------------------------------------------------------------------------------------

  var silenceForm = document.getElementById("silence-form");
  var silenceList = document.getElementById("silence-list");

  function loadSilences() {
    return list("/api/alerts/silences/?limit=100").then(renderSilences, failed(silenceList, "silences"));
  }

  function renderSilences(silences) {
    silenceList.textContent = "";
    if (!silences.length) { empty(silenceList, "No silences."); return; }
    var order = { active: 0, upcoming: 1, ended: 2 };
    silences.sort(function (a, b) { return order[a.state] - order[b.state]; });
    silences.forEach(function (silence) {
      var title = el("strong", null, (silence.rule || "every rule") + " on " + (silence.server || "every server"));
      var li = row(
        [stateBadge(silence.state), title],
        [
          (silence.state === "upcoming" ? "From " + when(silence.starts_at) + " " : "") +
            (silence.state === "ended" ? "Ended " : "Until ") + when(silence.ends_at) +
            (silence.created_by ? " · by " + silence.created_by : ""),
          silence.comment,
        ],
        "alerting-" + silence.state
      );
      li.dataset.silence = silence.id;
      if (canOperate && silence.state !== "ended") {
        var actions = el("div", "alerting-actions");
        var note = el("span", "alerting-note");
        var edit = el("button", "button button-quiet", "Edit");
        edit.type = "button";
        edit.addEventListener("click", function () { editSilence(silence); });
        actions.appendChild(edit);
        if (silence.state === "active") {
          actions.appendChild(actionButton("End now", "POST", "/api/alerts/silences/" + silence.id + "/end/", loadSilences, note));
        } else {
          actions.appendChild(actionButton("Delete", "DELETE", "/api/alerts/silences/" + silence.id + "/", loadSilences, note));
        }
        actions.appendChild(note);
        li.appendChild(actions);
      }
      silenceList.appendChild(li);
    });
  }

  function fillRuleSelect() {
    if (!silenceForm) return;
    var ruleSelect = silenceForm.elements.rule;
    var current = ruleSelect.value;
    while (ruleSelect.options.length > 1) ruleSelect.remove(1);
    rules.forEach(function (rule) {
      var option = new Option(rule.name, rule.name);
      option.dataset.id = rule.id;
      ruleSelect.appendChild(option);
    });
    if (current) setSelect(ruleSelect, current);
  }

  function resetSilence(form) {
    form.elements.rule.value = "";
    form.elements.server.value = "";
    form.querySelector('input[name=duration][value="3600"]').checked = true;
    form.elements.ends_at.value = "";
    form.elements.comment.value = "";
    document.getElementById("silence-prefill").hidden = true;
  }

  function editSilence(silence) {
    clearErrors(silenceForm);
    setSelect(silenceForm.elements.rule, silence.rule);
    setSelect(silenceForm.elements.server, silence.server);
    silenceForm.querySelector('input[name=duration][value="until"]').checked = true;
    silenceForm.elements.ends_at.value = toLocalInput(new Date(silence.ends_at));
    silenceForm.elements.comment.value = silence.comment;
    setEditing(silenceForm, silence.id);
    silenceForm.scrollIntoView({ block: "nearest" });
  }

  function silenceBody(form, editing) {
    var body = { rule: form.elements.rule.value || null, server: form.elements.server.value || null,
      comment: form.elements.comment.value };
    var duration = form.querySelector("input[name=duration]:checked").value;
    if (duration === "until") {
      body.ends_at = fromLocalInput(form.elements.ends_at.value);
    } else if (editing) {
      // Editing: "for 1 hour" means from now (the API counts duration_seconds from the silence's start).
      body.ends_at = new Date(Date.now() + Number(duration) * 1000).toISOString();
    } else {
      body.duration_seconds = Number(duration);
    }
    return body;
  }

  // ?rule=<rule id>&server=<server name>: the health page's "Silence…" on an alert.
  function prefillSilence() {
    if (!silenceForm) return;
    var params = new URLSearchParams(window.location.search);
    var ruleId = params.get("rule"), server = params.get("server");
    if (!ruleId && !server) return;
    var rule = rules.filter(function (r) { return String(r.id) === ruleId; })[0];
    if (rule) silenceForm.elements.rule.value = rule.name;
    if (server) setSelect(silenceForm.elements.server, server);
    var note = document.getElementById("silence-prefill");
    note.textContent = "For the alert you chose: " + (rule ? rule.name : "every rule") + " on " + (server || "every server") + ".";
    note.hidden = false;
    if (window.location.hash === "#silence") silenceForm.elements.comment.focus({ preventScroll: true });
  }

  // -- maintenance windows -----------------------------------------------------------------------------------------

  var windowForm = document.getElementById("window-form");
  var windowList = document.getElementById("window-list");

  function windowScope(w) {
    var parts = [];
    if (w.servers.length) parts.push(w.servers.join(", "));
    if (w.server_type) parts.push("type " + w.server_type);
    if (w.tag) parts.push("tag " + w.tag);
    return parts.join(" · ") || "no servers";
  }

  function windowState(w) {
    if (w.open_now) return "open";
    if (new Date(w.starts_at).getTime() > Date.now()) return "upcoming";
    return w.recurrence === "none" ? "ended" : "between repeats";
  }

  function loadWindows() {
    return list("/api/health/maintenance/?limit=100").then(renderWindows, failed(windowList, "maintenance windows"));
  }

  function renderWindows(windows) {
    windowList.textContent = "";
    if (!windows.length) { empty(windowList, "No maintenance windows."); return; }
    var order = { open: 0, upcoming: 1, "between repeats": 2, ended: 3 };
    windows.sort(function (a, b) { return order[windowState(a)] - order[windowState(b)]; });
    windows.forEach(function (w) {
      var state = windowState(w);
      var repeats = w.recurrence === "daily" ? " · every day" : w.recurrence === "weekly" ? " · every week" : "";
      var li = row(
        [stateBadge(state.replace(/ /g, "-")), el("strong", null, w.name)],
        [windowScope(w), when(w.starts_at) + " – " + when(w.ends_at) + repeats + (w.created_by ? " · by " + w.created_by : "")],
        "alerting-" + state.replace(/ /g, "-")
      );
      li.querySelector(".alerting-state").textContent = state;
      li.dataset.window = w.id;
      if (canOperate) {
        var actions = el("div", "alerting-actions");
        var note = el("span", "alerting-note");
        var edit = el("button", "button button-quiet", "Edit");
        edit.type = "button";
        edit.addEventListener("click", function () { editWindow(w); });
        actions.appendChild(edit);
        if (state === "open") {
          actions.appendChild(actionButton(w.recurrence === "none" ? "End now" : "End now (stops repeating)", "POST",
            "/api/health/maintenance/" + w.id + "/end/", loadWindows, note));
        } else {
          actions.appendChild(actionButton("Delete", "DELETE", "/api/health/maintenance/" + w.id + "/", loadWindows, note));
        }
        actions.appendChild(note);
        li.appendChild(actions);
      }
      windowList.appendChild(li);
    });
  }

  function resetWindow(form) {
    form.elements.name.value = "";
    select(form.elements.servers, []);
    form.elements.server_type.value = "";
    form.elements.tag.value = "";
    var now = new Date();
    form.elements.starts_at.value = toLocalInput(now);
    form.elements.ends_at.value = toLocalInput(new Date(now.getTime() + 3600 * 1000));
    form.elements.recurrence.value = "none";
  }

  function editWindow(w) {
    clearErrors(windowForm);
    windowForm.elements.name.value = w.name;
    select(windowForm.elements.servers, w.servers);
    setSelect(windowForm.elements.server_type, w.server_type);
    setSelect(windowForm.elements.tag, w.tag);
    windowForm.elements.starts_at.value = toLocalInput(new Date(w.starts_at));
    windowForm.elements.ends_at.value = toLocalInput(new Date(w.ends_at));
    windowForm.elements.recurrence.value = w.recurrence;
    setEditing(windowForm, w.id);
    windowForm.scrollIntoView({ block: "nearest" });
  }

  function windowBody(form) {
    return {
      name: form.elements.name.value,
      servers: selected(form.elements.servers),
      server_type: form.elements.server_type.value,
      tag: form.elements.tag.value,
      starts_at: fromLocalInput(form.elements.starts_at.value),
      ends_at: fromLocalInput(form.elements.ends_at.value),
      recurrence: form.elements.recurrence.value,
    };
  }

  // -- alert rules -------------------------------------------------------------------------------------------------

  var ruleForm = document.getElementById("rule-form");
  var ruleList = document.getElementById("rule-list");
  var MS_KINDS = ["latency", "predicted_breach"];
  var FRACTION_KINDS = ["availability", "error_rate"];

  function thresholdText(rule) {
    if (MS_KINDS.indexOf(rule.kind) !== -1) {
      return rule.threshold === null ? (rule.kind === "latency" ? "over 1000 ms (default)" : "the server's latency target")
        : "over " + rule.threshold + " ms";
    }
    if (FRACTION_KINDS.indexOf(rule.kind) !== -1) {
      var fallback = rule.kind === "availability" ? 0.99 : 0.1;
      var value = rule.threshold === null ? fallback : rule.threshold;
      return (rule.kind === "availability" ? "under " : "over ") + (value * 100).toFixed(1) + " %" +
        (rule.threshold === null ? " (default)" : "") + " over " + rule.window_seconds + " s";
    }
    return "";
  }

  function ruleScope(rule) {
    var parts = [];
    if (rule.servers.length) parts.push(rule.servers.join(", "));
    if (rule.server_type) parts.push("type " + rule.server_type);
    if (rule.tag) parts.push("tag " + rule.tag);
    return parts.length ? "Scope: " + parts.join(" · ") : "Scope: every server";
  }

  function loadRules() {
    return list("/api/alerts/rules/?limit=1000").then(function (found) {
      rules = found;
      fillRuleSelect();
      renderRules();
    }, failed(ruleList, "alert rules"));
  }

  function renderRules() {
    ruleList.textContent = "";
    if (!rules.length) { empty(ruleList, "No alert rules: nothing alerts."); return; }
    rules.forEach(function (rule) {
      var li = row(
        [stateBadge(rule.enabled ? rule.severity : "disabled"), el("strong", null, rule.name)],
        [
          rule.kind.replace(/_/g, " ") + (thresholdText(rule) ? ": " + thresholdText(rule) : "") +
            (rule.for_seconds ? " · for " + rule.for_seconds + " s" : ""),
          ruleScope(rule),
          rule.last_error ? "Cannot be evaluated: " + rule.last_error : "",
        ],
        rule.enabled ? "" : "alerting-disabled"
      );
      li.dataset.rule = rule.id;
      if (canOperate) {
        var actions = el("div", "alerting-actions");
        var note = el("span", "alerting-note");
        var edit = el("button", "button button-quiet", "Edit");
        edit.type = "button";
        edit.addEventListener("click", function () { editRule(rule); });
        actions.appendChild(edit);
        var toggle = el("button", "button button-quiet", rule.enabled ? "Disable" : "Enable");
        toggle.type = "button";
        toggle.addEventListener("click", function () {
          toggle.disabled = true;
          request("PATCH", "/api/alerts/rules/" + rule.id + "/", { enabled: !rule.enabled }).then(function (response) {
            if (response.status === 200) { loadRules(); return; }
            note.textContent = response.json.detail || messages(response.json);
            toggle.disabled = false;
          });
        });
        actions.appendChild(toggle);
        var remove = el("button", "button button-quiet", "Delete…");
        remove.type = "button";
        var confirmDelete = actionButton("Delete for good (its alerts too)", "DELETE", "/api/alerts/rules/" + rule.id + "/",
          loadRules, note);
        confirmDelete.classList.add("button-danger");
        confirmDelete.hidden = true;
        remove.addEventListener("click", function () { remove.hidden = true; confirmDelete.hidden = false; });
        actions.appendChild(remove);
        actions.appendChild(confirmDelete);
        actions.appendChild(note);
        li.appendChild(actions);
      }
      ruleList.appendChild(li);
    });
  }

  // The threshold's label carries its unit, from the kind; kinds without one hide it.
  function showKind(form) {
    var kind = form.elements.kind.value;
    var label = document.getElementById("rule-threshold-label");
    var help = document.getElementById("rule-threshold-help");
    var field = form.querySelector("[data-threshold-field]");
    field.hidden = MS_KINDS.indexOf(kind) === -1 && FRACTION_KINDS.indexOf(kind) === -1;
    if (MS_KINDS.indexOf(kind) !== -1) {
      label.textContent = "Threshold (ms)";
      help.textContent = kind === "latency" ? "Latency p95 over this fires. Empty: 1000 ms." :
        "The latency to predict crossing. Empty: the server's latency target.";
      form.elements.threshold.removeAttribute("max");
    } else if (kind === "availability") {
      label.textContent = "Threshold (fraction, 0–1)";
      help.textContent = "Availability under this fires; 0.99 is 99 %. Empty: 0.99.";
      form.elements.threshold.max = "1";
    } else {
      label.textContent = "Threshold (fraction, 0–1)";
      help.textContent = "A share of failed calls over this fires; 0.1 is 10 %. Empty: 0.1.";
      form.elements.threshold.max = "1";
    }
    form.querySelector("[data-horizon-field]").hidden = kind !== "predicted_breach";
  }

  var RULE_DEFAULTS = { window_seconds: 300, for_seconds: 0, horizon_seconds: 3600, group_wait_seconds: 5,
    group_interval_seconds: 60, repeat_interval_seconds: 14400 };

  function resetRule(form) {
    form.elements.name.value = "";
    form.elements.kind.selectedIndex = 0;
    form.elements.threshold.value = "";
    Object.keys(RULE_DEFAULTS).forEach(function (name) { form.elements[name].value = RULE_DEFAULTS[name]; });
    select(form.elements.servers, []);
    form.elements.server_type.value = "";
    form.elements.tag.value = "";
    form.elements.severity.value = "warning";
    form.elements.enabled.checked = true;
    showKind(form);
  }

  function editRule(rule) {
    clearErrors(ruleForm);
    ruleForm.elements.name.value = rule.name;
    ruleForm.elements.kind.value = rule.kind;
    ruleForm.elements.threshold.value = rule.threshold === null ? "" : rule.threshold;
    Object.keys(RULE_DEFAULTS).forEach(function (name) { ruleForm.elements[name].value = rule[name]; });
    select(ruleForm.elements.servers, rule.servers);
    setSelect(ruleForm.elements.server_type, rule.server_type);
    setSelect(ruleForm.elements.tag, rule.tag);
    ruleForm.elements.severity.value = rule.severity;
    ruleForm.elements.enabled.checked = rule.enabled;
    showKind(ruleForm);
    setEditing(ruleForm, rule.id);
    ruleForm.scrollIntoView({ block: "nearest" });
  }

  function ruleBody(form) {
    var body = {
      name: form.elements.name.value,
      kind: form.elements.kind.value,
      threshold: form.querySelector("[data-threshold-field]").hidden ? null : number(form.elements.threshold.value),
      servers: selected(form.elements.servers),
      server_type: form.elements.server_type.value,
      tag: form.elements.tag.value,
      severity: form.elements.severity.value,
      enabled: form.elements.enabled.checked,
    };
    Object.keys(RULE_DEFAULTS).forEach(function (name) {
      var value = number(form.elements[name].value);
      body[name] = value === null ? RULE_DEFAULTS[name] : value;
    });
    return body;
  }

  // -- channels (admins) -------------------------------------------------------------------------------------------

  var channelForm = document.getElementById("channel-form");
  var channelList = document.getElementById("channel-list");
  var deliveryList = document.getElementById("delivery-list");
  var testOutcomes = {}; // channel id -> the last "send a test" outcome, kept across reloads of the list

  function outcomeText(delivery) {
    if (delivery.state === "delivered") {
      return "Delivered" + (delivery.last_status_code ? ": HTTP " + delivery.last_status_code : "");
    }
    if (delivery.state === "failed") return "Failed: " + (delivery.last_error || "HTTP " + delivery.last_status_code);
    return "Pending (attempt " + delivery.attempts + ")" + (delivery.last_error ? ": " + delivery.last_error : "");
  }

  function loadChannels() {
    if (!channelList) return Promise.resolve();
    return list("/api/alerts/channels/").then(renderChannels, failed(channelList, "channels"));
  }

  function renderChannels(channels) {
    channelList.textContent = "";
    if (!channels.length) { empty(channelList, "No channels: alerts show here and on the health page but go nowhere."); return; }
    channels.forEach(function (channel) {
      var target = channel.kind === "webhook" ? channel.url : "callable " + channel.callable_name;
      var li = row(
        [stateBadge(channel.enabled ? channel.kind : "disabled"), el("strong", null, channel.name)],
        [
          target,
          (channel.kind === "webhook" ? "Secret: " + (channel.has_secret ? "set, hidden" : "none") + " · " : "") +
            "from " + channel.min_severity,
        ],
        channel.enabled ? "" : "alerting-disabled"
      );
      li.dataset.channel = channel.id;
      var actions = el("div", "alerting-actions");
      var outcome = el("span", "alerting-note alerting-outcome");
      if (testOutcomes[channel.id]) {
        outcome.textContent = testOutcomes[channel.id].text;
        outcome.classList.add(testOutcomes[channel.id].ok ? "alerting-ok" : "alerting-bad");
      }
      var edit = el("button", "button button-quiet", "Edit");
      edit.type = "button";
      edit.addEventListener("click", function () { editChannel(channel); });
      actions.appendChild(edit);
      var test = el("button", "button button-quiet", "Send a test");
      test.type = "button";
      test.addEventListener("click", function () {
        test.disabled = true;
        outcome.className = "alerting-note alerting-outcome";
        outcome.textContent = "Sending…";
        request("POST", "/api/alerts/channels/" + channel.id + "/test/").then(function (response) {
          var ok = response.status === 200 && response.json.state === "delivered";
          var text = response.status === 200 ? "Test: " + outcomeText(response.json) :
            "Test: " + (response.json.detail || "HTTP " + response.status);
          testOutcomes[channel.id] = { ok: ok, text: text };
          outcome.textContent = text;
          outcome.classList.add(ok ? "alerting-ok" : "alerting-bad");
          test.disabled = false;
          loadDeliveries();
        }).catch(function (error) {
          outcome.textContent = "Test: " + error.message;
          test.disabled = false;
        });
      });
      actions.appendChild(test);
      actions.appendChild(actionButton("Delete", "DELETE", "/api/alerts/channels/" + channel.id + "/", loadChannels, outcome));
      actions.appendChild(outcome);
      li.appendChild(actions);
      channelList.appendChild(li);
    });
  }

  function loadDeliveries() {
    if (!deliveryList) return Promise.resolve();
    return list("/api/alerts/deliveries/?limit=10").then(function (deliveries) {
      deliveryList.textContent = "";
      if (!deliveries.length) { empty(deliveryList, "Nothing sent yet."); return; }
      deliveries.forEach(function (d) {
        var what = d.payload && d.payload.status === "test" ? "test" : (d.rule || "alert") + " (" + ((d.payload && d.payload.status) || "") + ")";
        deliveryList.appendChild(row(
          [stateBadge(d.state), el("strong", null, d.channel + ": " + what)],
          [when(d.created_at) + " · " + outcomeText(d) + " · " + d.attempts + (d.attempts === 1 ? " attempt" : " attempts")],
          ""
        ));
      });
    }, failed(deliveryList, "deliveries"));
  }

  function showChannelKind(form) {
    var webhook = form.elements.kind.value === "webhook";
    form.querySelectorAll("[data-webhook-field]").forEach(function (f) { f.hidden = !webhook; });
    form.querySelectorAll("[data-callable-field]").forEach(function (f) { f.hidden = webhook; });
  }

  function showSecretState(form, channel) {
    var state = document.getElementById("channel-secret-state");
    var clear = document.getElementById("channel-clear-label");
    form.elements.secret.value = "";
    form.elements.clear_secret.checked = false;
    if (channel && channel.has_secret) {
      state.textContent = "Set, hidden. Type a new one to replace it.";
      form.elements.secret.placeholder = "set, hidden";
      clear.hidden = false;
    } else {
      state.textContent = "Signs each body (HMAC-SHA256); never shown back.";
      form.elements.secret.placeholder = "";
      clear.hidden = true;
    }
  }

  function resetChannel(form) {
    form.elements.name.value = "";
    form.elements.kind.value = "webhook";
    form.elements.url.value = "";
    form.elements.callable_name.value = "";
    form.elements.min_severity.value = "info";
    form.elements.enabled.checked = true;
    showChannelKind(form);
    showSecretState(form, null);
  }

  function editChannel(channel) {
    clearErrors(channelForm);
    channelForm.elements.name.value = channel.name;
    channelForm.elements.kind.value = channel.kind;
    channelForm.elements.url.value = channel.url;
    setSelect(channelForm.elements.callable_name, channel.callable_name);
    channelForm.elements.min_severity.value = channel.min_severity;
    channelForm.elements.enabled.checked = channel.enabled;
    showChannelKind(channelForm);
    showSecretState(channelForm, channel);
    setEditing(channelForm, channel.id);
    channelForm.scrollIntoView({ block: "nearest" });
  }

  function channelBody(form, editing) {
    var body = {
      name: form.elements.name.value,
      kind: form.elements.kind.value,
      url: form.elements.kind.value === "webhook" ? form.elements.url.value : "",
      callable_name: form.elements.kind.value === "callable" ? form.elements.callable_name.value : "",
      min_severity: form.elements.min_severity.value,
      enabled: form.elements.enabled.checked,
    };
    // Write-only: sent when typed (replace) or cleared on purpose; an edit that leaves it empty keeps it.
    if (form.elements.clear_secret.checked) body.secret = "";
    else if (form.elements.secret.value || !editing) body.secret = form.elements.secret.value;
    return body;
  }

  // -- start -------------------------------------------------------------------------------------------------------

  if (silenceForm) {
    wireForm(silenceForm, "/api/alerts/silences/", silenceBody, resetSilence, loadSilences, "the silence");
    silenceForm.elements.ends_at.addEventListener("input", function () {
      silenceForm.querySelector('input[name=duration][value="until"]').checked = true;
    });
  }
  if (windowForm) {
    resetWindow(windowForm);
    wireForm(windowForm, "/api/health/maintenance/", windowBody, resetWindow, loadWindows, "the window");
  }
  if (ruleForm) {
    resetRule(ruleForm);
    ruleForm.elements.kind.addEventListener("change", function () { showKind(ruleForm); });
    wireForm(ruleForm, "/api/alerts/rules/", ruleBody, resetRule, loadRules, "the rule");
  }
  if (channelForm && canAdmin) {
    resetChannel(channelForm);
    channelForm.elements.kind.addEventListener("change", function () { showChannelKind(channelForm); });
    wireForm(channelForm, "/api/alerts/channels/", channelBody, resetChannel, loadChannels, "the channel");
  }
  loadRules().then(prefillSilence);
  loadSilences();
  loadWindows();
  loadChannels();
  loadDeliveries();
})();
