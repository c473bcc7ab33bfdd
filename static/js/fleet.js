/* Live fleet status: listens on /ws/fleet/ and updates every element marked data-server="<name>".
 *
 * Messages (see registry/events.py and registry/consumers.py):
 *   {"type": "fleet.snapshot", "servers": [{name, status, status_reason, last_seen_at, protocol_version, enabled,
 *                                          counts: {tools, resources, resource_templates, prompts}}]}
 *   {"type": "fleet.status", server, status, status_reason, last_seen_at, protocol_version}
 *   {"type": "fleet.seen", servers: {name: last_seen_at}}   (after every batch of calls, every few seconds)
 */
(function () {
  "use strict";

  var STATUS_LABELS = {
    online: "Online",
    degraded: "Degraded",
    offline: "Offline",
    unknown: "Unknown",
    disabled: "Disabled",
  };
  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 30000;

  var fleet = {}; // name -> latest known row, so the counters can be recomputed for the whole fleet
  var backoff = MIN_BACKOFF_MS;
  var indicator = document.getElementById("live-indicator");

  function setIndicator(state, text) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.dataset.state = state;
    var label = indicator.querySelector(".live-text");
    if (label) label.textContent = text || state;
  }

  function relativeTime(iso) {
    if (!iso) return "never";
    var then = Date.parse(iso);
    if (isNaN(then)) return "never";
    var seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (seconds < 60) return seconds + " s ago";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h ago";
    return Math.floor(hours / 24) + " d ago";
  }

  function refreshTimes() {
    document.querySelectorAll("time[data-relative]").forEach(function (el) {
      var iso = el.getAttribute("datetime");
      el.textContent = relativeTime(iso);
      if (iso) el.title = new Date(iso).toLocaleString();
    });
  }

  function eachFor(name, callback) {
    document.querySelectorAll("[data-server]").forEach(function (el) {
      if (el.dataset.server === name) callback(el);
    });
  }

  function setField(container, field, value) {
    container.querySelectorAll('[data-field="' + field + '"]').forEach(function (el) {
      el.textContent = value;
    });
  }

  function applyStatus(row) {
    eachFor(row.name, function (el) {
      var changed = el.dataset.status !== row.status;
      el.dataset.status = row.status;
      el.querySelectorAll('[data-field="status"]').forEach(function (badge) {
        badge.className = "badge status-" + (row.status || "unknown");
        badge.textContent = STATUS_LABELS[row.status] || row.status || "Unknown";
        if (row.status_reason) badge.title = row.status_reason;
        else badge.removeAttribute("title");
        if (changed) badge.classList.add("flash");
      });
      setField(el, "status-reason", row.status_reason || "");
      setField(el, "protocol-version", row.protocol_version || "–");
      el.querySelectorAll('time[data-field="last-seen"]').forEach(function (time) {
        time.setAttribute("datetime", row.last_seen_at || "");
        time.textContent = relativeTime(row.last_seen_at);
      });
      if (row.counts) {
        setField(el, "tool-count", row.counts.tools);
        setField(el, "resource-count", row.counts.resources);
        setField(el, "resource-template-count", row.counts.resource_templates);
        setField(el, "prompt-count", row.counts.prompts);
      }
    });
  }

  function refreshCounters() {
    var counters = document.querySelectorAll("[data-counter]");
    if (!counters.length) return;
    var totals = { total: 0, online: 0, troubled: 0, tools: 0 };
    Object.keys(fleet).forEach(function (name) {
      var row = fleet[name];
      totals.total += 1;
      if (row.status === "online") totals.online += 1;
      if (row.status === "offline" || row.status === "degraded") totals.troubled += 1;
      if (row.counts) totals.tools += row.counts.tools || 0;
    });
    counters.forEach(function (el) {
      var key = el.dataset.counter;
      if (key in totals) el.textContent = totals[key];
    });
  }

  function onMessage(message) {
    if (message.type === "fleet.snapshot") {
      fleet = {};
      (message.servers || []).forEach(function (row) {
        fleet[row.name] = row;
        applyStatus(row);
      });
      refreshCounters();
    } else if (message.type === "fleet.status") {
      var row = Object.assign({}, fleet[message.server] || {}, {
        name: message.server,
        status: message.status,
        status_reason: message.status_reason,
        last_seen_at: message.last_seen_at,
        protocol_version: message.protocol_version,
      });
      fleet[row.name] = row;
      applyStatus(row);
      refreshCounters();
    } else if (message.type === "fleet.seen") {
      Object.keys(message.servers || {}).forEach(function (name) {
        var seen = message.servers[name];
        if (fleet[name]) fleet[name].last_seen_at = seen;
        eachFor(name, function (el) {
          el.querySelectorAll('time[data-field="last-seen"]').forEach(function (time) {
            time.setAttribute("datetime", seen || "");
            time.textContent = relativeTime(seen);
          });
        });
      });
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket;
    try {
      socket = new WebSocket(scheme + window.location.host + "/ws/fleet/");
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket.onopen = function () {
      backoff = MIN_BACKOFF_MS;
      setIndicator("live", "live");
    };
    socket.onmessage = function (event) {
      try {
        onMessage(JSON.parse(event.data));
      } catch (error) {
        console.warn("fleet: unreadable message", error);
      }
    };
    socket.onclose = scheduleReconnect;
  }

  function scheduleReconnect() {
    // Jittered exponential backoff, so a restarted server is not hit by every browser at once.
    var delay = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    setIndicator("reconnecting", "reconnecting");
    window.setTimeout(connect, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes();
    window.setInterval(refreshTimes, 5000);
    if (!("WebSocket" in window)) return;
    setIndicator("connecting", "connecting");
    connect();
  });
})();
