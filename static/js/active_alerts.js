/* The overview's firing alerts, each with its cause: GET /api/alerts/?state=firing (the alerts API, viewers may read
 * it), then live from the health.alerts stream (an event carries the alert as the API shows it, plus `what`), and
 * read again every 30 s in case an event was missed. Server text goes in with textContent only.
 */
(function () {
  "use strict";

  var RELOAD_MS = 30000;
  var list = document.getElementById("active-alerts");
  if (!list) return;
  var alerts = {}; // id -> alert
  var loaded = false;
  var SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };

  function rankOf(severity) {
    return severity in SEVERITY_RANK ? SEVERITY_RANK[severity] : 9;
  }

  function span(className, text) {
    var node = document.createElement("span");
    node.className = className;
    node.textContent = text;
    return node;
  }

  function since(iso) {
    if (!iso) return "";
    var then = Date.parse(iso);
    if (isNaN(then)) return "";
    var minutes = Math.max(0, Math.round((Date.now() - then) / 60000));
    if (minutes < 1) return "firing for under a minute";
    if (minutes < 120) return "firing for " + minutes + " min";
    return "firing for " + Math.round(minutes / 60) + " h";
  }

  function render() {
    var firing = Object.keys(alerts)
      .map(function (id) { return alerts[id]; })
      .sort(function (a, b) {
        var bySeverity = rankOf(a.severity) - rankOf(b.severity);
        if (bySeverity) return bySeverity;
        if (a.silenced !== b.silenced) return a.silenced ? 1 : -1;
        return String(b.fired_at || b.started_at || "").localeCompare(String(a.fired_at || a.started_at || ""));
      });
    list.textContent = "";
    firing.forEach(function (alert) {
      var item = document.createElement("li");
      item.className = "active-alert severity-" + alert.severity + (alert.silenced ? " alert-silenced" : "");
      item.dataset.alert = alert.id;
      item.appendChild(span("badge severity-badge severity-" + alert.severity, alert.severity));
      item.appendChild(document.createTextNode(" "));
      var server = document.createElement("a");
      server.className = "server-name";
      server.href = "/servers/" + encodeURIComponent(alert.server) + "/";
      server.textContent = alert.server;
      item.appendChild(server);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(span("alert-rule", alert.rule));
      if (alert.flapping) item.appendChild(span("badge alert-flag", "flapping"));
      if (alert.silenced) item.appendChild(span("badge alert-flag", "silenced"));
      if (alert.acknowledged_by) item.appendChild(span("badge alert-flag", "acknowledged by " + alert.acknowledged_by));
      var cause = document.createElement("p");
      cause.className = "alert-cause";
      cause.textContent = alert.cause || alert.summary || "";
      item.appendChild(cause);
      if (alert.cause && alert.summary && alert.summary !== alert.cause) {
        item.appendChild(span("subtle alert-now", "now: " + alert.summary));
      }
      var when = since(alert.fired_at || alert.started_at);
      if (when) item.appendChild(span("subtle alert-since", " · " + when));
      list.appendChild(item);
    });
    if (!firing.length) {
      var none = document.createElement("li");
      none.className = "subtle";
      none.textContent = loaded ? "No alert is firing." : "Could not read the alerts yet.";
      list.appendChild(none);
    }
    var count = document.getElementById("firing-count");
    if (count) {
      count.hidden = false;
      count.textContent = firing.length;
    }
  }

  function load() {
    return window.OrchestratorDom.getJSON(list.dataset.api)
      .then(function (page) {
        alerts = {};
        (page.results || []).forEach(function (alert) {
          if (alert.state === "firing") alerts[alert.id] = alert;
        });
        loaded = true;
        render();
      })
      .catch(function (error) {
        console.warn("active alerts: could not load", error);
        render();
      });
  }

  function onEvent(event) {
    var alert = event.payload || {};
    if (alert.id === undefined || alert.id === null) return; // e.g. a rule that could not be evaluated
    if (alert.state === "firing") alerts[alert.id] = alert;
    else delete alerts[alert.id];
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    load();
    window.setInterval(load, RELOAD_MS);
    if ("WebSocket" in window && window.OrchestratorEvents) {
      window.OrchestratorEvents.connect({ streams: ["health.alerts"], onEvent: onEvent });
    }
  });
})();
