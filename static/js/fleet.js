/* Live fleet status: updates every element marked data-server="<name>".
 *
 * On the overview it also keeps the status tiles (which add up to the fleet) and the "servers not online" list.
 *
 * Starts from GET /api/pipeline/fleet/ ({servers: [{name, status, status_reason, last_seen_at, protocol_version,
 * enabled, counts}], after: {"fleet.status": seq}}), then follows the pipeline's streams on /ws/events/
 * (static/js/events.js) from right after that snapshot:
 *   fleet.status  payload {server, status, status_reason, last_seen_at, protocol_version}
 *   fleet.seen    payload {servers: {name: last_seen_at}}   (after every batch of calls, every few seconds)
 */
(function () {
  "use strict";

  var STATUS_LABELS = {
    online: "Online",
    degraded: "Degraded",
    pending: "Pending",
    unhealthy: "Unhealthy",
    offline: "Offline",
    maintenance: "Maintenance",
    unknown: "Unknown",
    disabled: "Disabled",
  };
  var fleet = {}; // name -> latest known row, so the counters can be recomputed for the whole fleet
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

  // The overview's status tiles, breakdown and "servers not online" list (static/js data from the page:
  // registry.selectors.status_display), recomputed from the whole fleet on every change.
  var display = null;
  var displayScript = document.getElementById("status-display");
  if (displayScript) {
    try {
      display = JSON.parse(displayScript.textContent);
    } catch (error) {
      display = null;
    }
  }

  function refreshCounters() {
    var counters = document.querySelectorAll("[data-counter]");
    if (!counters.length) return;
    var totals = { total: 0, tools: 0 };
    Object.keys(fleet).forEach(function (name) {
      var row = fleet[name];
      totals.total += 1;
      totals[row.status] = (totals[row.status] || 0) + 1;
      if (row.counts) totals.tools += row.counts.tools || 0;
    });
    counters.forEach(function (el) {
      var key = el.dataset.counter;
      el.textContent = totals[key] || 0;
    });
    if (!display) return;
    document.querySelectorAll("[data-tile]").forEach(function (tile) {
      var status = tile.dataset.tile;
      tile.hidden = !(totals[status] || display.always_shown.indexOf(status) >= 0);
    });
    var sum = document.getElementById("tiles-sum");
    if (sum) {
      var parts = display.order
        .filter(function (status) { return totals[status]; })
        .map(function (status) { return totals[status] + " " + (display.labels[status] || status).toLowerCase(); });
      sum.textContent = totals.total + (totals.total === 1 ? " server" : " servers") + (parts.length ? " = " + parts.join(" + ") : "");
    }
    refreshAttention();
  }

  function refreshAttention() {
    var list = document.getElementById("attention-list");
    if (!list || !display) return;
    var rank = {};
    display.order.forEach(function (status, index) { rank[status] = index; });
    var rows = Object.keys(fleet)
      .map(function (name) { return fleet[name]; })
      .filter(function (row) { return row.status !== "online"; })
      .sort(function (a, b) {
        return (rank[a.status] - rank[b.status]) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
      });
    list.textContent = "";
    rows.forEach(function (row) {
      var item = document.createElement("li");
      item.dataset.attention = row.name;
      var link = document.createElement("a");
      link.className = "server-name";
      link.href = "/servers/" + encodeURIComponent(row.name) + "/";
      link.textContent = row.name;
      var badge = document.createElement("span");
      badge.className = "badge status-" + (row.status || "unknown");
      badge.textContent = STATUS_LABELS[row.status] || row.status || "Unknown";
      var reason = document.createElement("span");
      reason.className = "attention-reason";
      reason.textContent = row.status_reason || display.meanings[row.status] || "";
      item.append(link, " ", badge, " ", reason);
      list.appendChild(item);
    });
    if (!rows.length) {
      var fine = document.createElement("li");
      fine.className = "subtle";
      fine.textContent = "Every server is online.";
      list.appendChild(fine);
    }
    var count = document.getElementById("attention-count");
    if (count) count.textContent = rows.length;
  }

  function applySnapshot(servers) {
    fleet = {};
    (servers || []).forEach(function (row) {
      fleet[row.name] = row;
      applyStatus(row);
    });
    refreshCounters();
  }

  function onEvent(event) {
    var message = event.payload;
    if (event.stream === "fleet.status") {
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
    } else if (event.stream === "fleet.seen") {
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

  function loadSnapshot() {
    // The rows and where to resume fleet.status after them, so nothing between the two is lost.
    return fetch("/api/pipeline/fleet/", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
  }

  function start() {
    loadSnapshot()
      .then(function (snapshot) {
        applySnapshot(snapshot.servers);
        window.OrchestratorEvents.connect({
          streams: ["fleet.status", "fleet.seen"],
          after: { "fleet.status": snapshot.after["fleet.status"] },
          onEvent: onEvent,
          onGap: function (stream) {
            // Status changes were lost (out of retention): start again from a fresh snapshot.
            if (stream === "fleet.status") loadSnapshot().then(function (fresh) { applySnapshot(fresh.servers); });
          },
          onState: function (state) {
            setIndicator(state, state);
          },
        });
      })
      .catch(function (error) {
        console.warn("fleet: no snapshot yet", error);
        setIndicator("reconnecting", "reconnecting");
        window.setTimeout(start, 3000);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes();
    window.setInterval(refreshTimes, 5000);
    if (!("WebSocket" in window) || !window.OrchestratorEvents) return;
    setIndicator("connecting", "connecting");
    start();
  });
})();
