/* The alert card of the health page: firing alerts first, grouped by rule and server type (as notifications are),
 * each with its severity, server, since when, what holds now and the cause it fired with; silenced ones muted
 * ("silenced until HH:MM by X", no Acknowledge); acknowledged ones say who and when; operators get a "Silence…" link
 * (to /alerting/, prefilled) and an Acknowledge button, viewers neither. Resolved alerts collapse under "Recently
 * resolved" with their cause and how they resolved, so the history does not push the server table down.
 * Rules the alert rounds cannot evaluate are listed apart. Live from the health.alerts stream, reloaded every 15 s
 * (silences made elsewhere change no alert). Server text is set with textContent only.
 */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var getJSON = dom.getJSON, csrfToken = dom.csrfToken;
  var RESOLVED_SHOWN = 20;
  var RELOAD_MS = 15000;
  var SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };

  var alerts = {}; // id -> alert, as /api/alerts/ and the health.alerts events give them
  var ruleErrors = {}; // rule name -> {kind, error, error_at}
  var canAct = false; // operators: acknowledge and silence

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "–";
  }
  function ago(iso) {
    var minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
    if (minutes < 1) return "just now";
    if (minutes < 90) return minutes + " min ago";
    return Math.round(minutes / 60) + " h ago";
  }
  function duration(fromIso, toIso) {
    var seconds = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 1000));
    return seconds < 90 ? seconds + " s" : Math.round(seconds / 60) + " min";
  }

  // -- firing, grouped --------------------------------------------------------------------------------------------

  function firingRow(alert) {
    var li = el("li", "alert-item alert-firing severity-" + alert.severity + (alert.silenced ? " alert-silenced" : ""));
    li.dataset.alert = alert.id;
    var head = el("div", "alert-line");
    var state = alert.silenced ? "silenced" : alert.flapping ? "flapping" : "firing";
    head.appendChild(el("span", "alert-state alert-state-" + state, state.toUpperCase()));
    head.appendChild(el("strong", "alert-server", alert.server));
    head.appendChild(el("span", "muted", alert.severity + " · since " + clock(alert.fired_at || alert.started_at) +
      " (" + ago(alert.fired_at || alert.started_at) + ")"));
    li.appendChild(head);
    li.appendChild(el("div", "alert-summary", alert.summary));
    if (alert.cause && alert.cause !== alert.summary) li.appendChild(el("div", "muted alert-cause", "Fired on: " + alert.cause));
    if (alert.silenced && alert.silenced_by) {
      var silence = alert.silenced_by;
      li.appendChild(el("div", "muted alert-silence", "Silenced until " + clock(silence.ends_at) +
        (silence.created_by ? " by " + silence.created_by : "") + (silence.comment ? ": " + silence.comment : "") +
        " (sends nothing)"));
    }
    if (alert.acknowledged_by) {
      li.appendChild(el("div", "muted alert-ack", "Acknowledged by " + alert.acknowledged_by + " at " +
        clock(alert.acknowledged_at)));
    }
    if (canAct && !alert.silenced) {
      var actions = el("div", "alert-actions");
      var link = el("a", "button button-quiet", "Silence…");
      link.href = "/alerting/?rule=" + encodeURIComponent(alert.rule_id) + "&server=" +
        encodeURIComponent(alert.server) + "#silence";
      actions.appendChild(link);
      if (!alert.acknowledged_by) actions.appendChild(ackButton(alert));
      li.appendChild(actions);
    }
    return li;
  }

  function ackButton(alert) {
    var button = el("button", "button button-quiet", "Acknowledge");
    button.type = "button";
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch("/api/alerts/" + alert.id + "/acknowledge/", { method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (updated) { alerts[updated.id] = updated; render(); })
        .catch(function (error) {
          button.disabled = false;
          button.textContent = "Acknowledge (failed: " + error.message + ")";
        });
    });
    return button;
  }

  function severityRank(severity) {
    return severity in SEVERITY_RANK ? SEVERITY_RANK[severity] : 9;
  }

  function groupsOf(firing) {
    var groups = {};
    firing.forEach(function (alert) {
      var key = alert.rule + "\u0000" + (alert.server_type || "");
      (groups[key] = groups[key] || { rule: alert.rule, type: alert.server_type, severity: alert.severity, alerts: [] })
        .alerts.push(alert);
    });
    var list = Object.keys(groups).map(function (key) { return groups[key]; });
    list.forEach(function (group) {
      group.alerts.sort(function (a, b) {
        if (a.silenced !== b.silenced) return a.silenced ? 1 : -1;
        return (b.fired_at || "").localeCompare(a.fired_at || "");
      });
      group.live = group.alerts.filter(function (a) { return !a.silenced; }).length;
    });
    list.sort(function (a, b) {
      if ((a.live > 0) !== (b.live > 0)) return a.live > 0 ? -1 : 1;
      var rank = severityRank(a.severity) - severityRank(b.severity);
      return rank || a.rule.localeCompare(b.rule);
    });
    return list;
  }

  function renderFiring(firing) {
    var list = document.getElementById("alert-list");
    list.textContent = "";
    if (!firing.length) {
      list.appendChild(el("li", "muted", "Nothing firing."));
      return;
    }
    groupsOf(firing).forEach(function (group) {
      var li = el("li", "alert-group" + (group.live ? "" : " alert-group-silenced"));
      li.dataset.rule = group.rule;
      var head = el("div", "alert-group-head");
      head.appendChild(el("strong", null, group.rule));
      head.appendChild(el("span", "muted", " · " + (group.type || "no type") + " · " + group.alerts.length +
        (group.alerts.length === 1 ? " alert" : " alerts") +
        (group.live < group.alerts.length ? ", " + (group.alerts.length - group.live) + " silenced" : "")));
      li.appendChild(head);
      var items = el("ul", "alert-list");
      group.alerts.forEach(function (alert) { items.appendChild(firingRow(alert)); });
      li.appendChild(items);
      list.appendChild(li);
    });
  }

  // -- resolved, collapsed ----------------------------------------------------------------------------------------

  function resolvedRow(alert) {
    var li = el("li", "alert-item alert-resolved severity-" + alert.severity);
    li.dataset.alert = alert.id;
    var head = el("div", "alert-line");
    head.appendChild(el("span", "alert-state alert-state-resolved", "RESOLVED"));
    head.appendChild(el("strong", "alert-server", alert.server));
    head.appendChild(el("span", "muted", alert.rule + " · " + clock(alert.fired_at || alert.started_at) + "–" +
      clock(alert.resolved_at) + " (" + duration(alert.fired_at || alert.started_at, alert.resolved_at) + ")"));
    li.appendChild(head);
    li.appendChild(el("div", "alert-cause", "Cause: " + (alert.cause || alert.summary)));
    if (alert.resolution) li.appendChild(el("div", "muted alert-resolution", "Resolved: " + alert.resolution));
    if (alert.acknowledged_by) {
      li.appendChild(el("div", "muted alert-ack", "Acknowledged by " + alert.acknowledged_by + " at " +
        clock(alert.acknowledged_at)));
    }
    return li;
  }

  function renderResolved(resolved) {
    var list = document.getElementById("alert-resolved-list");
    list.textContent = "";
    resolved.slice(0, RESOLVED_SHOWN).forEach(function (alert) { list.appendChild(resolvedRow(alert)); });
    if (!resolved.length) list.appendChild(el("li", "muted", "None."));
    document.getElementById("alert-resolved-count").textContent = resolved.length > RESOLVED_SHOWN ?
      RESOLVED_SHOWN + " most recent" : String(resolved.length);
  }

  function render() {
    var all = Object.keys(alerts).map(function (id) { return alerts[id]; });
    var firing = all.filter(function (a) { return a.state === "firing"; });
    var resolved = all.filter(function (a) { return a.state === "resolved"; });
    resolved.sort(function (a, b) { return (b.resolved_at || "").localeCompare(a.resolved_at || ""); });
    renderFiring(firing);
    renderResolved(resolved);
    var silenced = firing.filter(function (a) { return a.silenced; }).length;
    var live = firing.length - silenced;
    document.getElementById("alert-count").textContent = (live ? live + " firing" : "none firing") +
      (silenced ? ", " + silenced + " silenced" : "");
  }

  function load() {
    Promise.all([getJSON("/api/alerts/?state=firing"), getJSON("/api/alerts/?state=resolved")])
      .then(function (both) {
        alerts = {};
        both.forEach(function (page) { page.results.forEach(function (a) { alerts[a.id] = a; }); });
        render();
      })
      .catch(function () {});
  }

  // -- rules that cannot be evaluated (their `last_error`), live from rule_error / rule_ok ------------------------

  function renderRuleErrors() {
    var names = Object.keys(ruleErrors).sort();
    document.getElementById("rule-errors").hidden = !names.length;
    var list = document.getElementById("rule-error-list");
    list.textContent = "";
    names.forEach(function (name) {
      var rule = ruleErrors[name];
      var li = el("li", "alert-item alert-firing severity-warning rule-error");
      li.dataset.rule = name;
      li.appendChild(el("strong", null, "CANNOT EVALUATE · " + rule.kind + " · " + name));
      li.appendChild(el("div", null, rule.error));
      if (rule.error_at) li.appendChild(el("div", "muted", "since " + new Date(rule.error_at).toLocaleTimeString()));
      list.appendChild(li);
    });
  }

  function loadRuleErrors() {
    getJSON("/api/alerts/rules/?failing=true")
      .then(function (page) {
        ruleErrors = {};
        page.results.forEach(function (r) {
          ruleErrors[r.name] = { kind: r.kind, error: r.last_error, error_at: r.last_error_at };
        });
        renderRuleErrors();
      })
      .catch(function () {});
  }

  function onEvent(event) {
    var payload = event.payload;
    if (payload.what === "pending") return;
    if (payload.what === "rule_error" || payload.what === "rule_ok") {
      if (payload.what === "rule_ok") delete ruleErrors[payload.rule];
      else ruleErrors[payload.rule] = payload;
      renderRuleErrors();
      return;
    }
    alerts[payload.id] = payload;
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var card = document.getElementById("alerts-card");
    if (!card || !window.OrchestratorEvents) return;
    canAct = card.hasAttribute("data-can-act") && !!csrfToken();
    load();
    loadRuleErrors();
    window.setInterval(load, RELOAD_MS);
    window.OrchestratorEvents.connect({ streams: ["health.alerts"], onEvent: onEvent });
  });
})();
