/* The operations page: recent operations, live from the stream coordinator.operations; operators run an arbitrage
 * analysis (POST /api/coordinator/arbitrage/) and land on its page. */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var getJSON = dom.getJSON, td = dom.td, postJSON = dom.postJSON;

  function list(value) {
    return String(value || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function summary(op) {
    if (op.error) return op.error;
    if (op.kind === "arbitrage") {
      if (op.state === "running") return "running…";
      var best = op.best;
      return op.opportunities + " opportunit" + (op.opportunities === 1 ? "y" : "ies") +
        (best ? " · best " + best.symbol + " buy " + best.buy_on + " sell " + best.sell_on + " " +
          best.net_bps.toFixed(1) + " bps" : "");
    }
    return op.state;
  }

  function render(page) {
    var body = document.getElementById("operation-rows");
    body.textContent = "";
    page.results.forEach(function (op) {
      var tr = document.createElement("tr");
      tr.dataset.operation = op.id;
      var link = document.createElement("a");
      link.href = "/coordinator/operations/" + op.id + "/";
      link.textContent = "#" + op.id;
      var first = td("");
      first.appendChild(link);
      tr.appendChild(first);
      tr.appendChild(td(op.kind));
      var state = td("");
      var badge = document.createElement("span");
      badge.className = "badge op-" + op.state;
      badge.textContent = op.state;
      state.appendChild(badge);
      tr.appendChild(state);
      tr.appendChild(td(summary(op)));
      tr.appendChild(td(op.created_by, "col-wide"));
      tr.appendChild(td(op.duration_ms !== null ? Math.round(op.duration_ms) : null, "num col-wide"));
      tr.appendChild(td(op.started_at.slice(11, 19), "col-wide"));
      body.appendChild(tr);
    });
  }

  function renderRouting(stats) {
    var decisions = stats.decisions || {};
    document.getElementById("routing-decisions").textContent = Object.keys(decisions).length
      ? Object.keys(decisions).map(function (k) { return k.replace("_", " ") + " " + decisions[k]; }).join(" · ")
      : "";
    var rows = Object.keys(stats.servers || {}).sort().map(function (name) {
      var s = stats.servers[name];
      var tr = document.createElement("tr");
      tr.appendChild(td(name));
      tr.appendChild(td(s.ewma_latency_ms !== null ? s.ewma_latency_ms.toFixed(1) : null, "num"));
      tr.appendChild(td(s.in_flight, "num col-wide"));
      tr.appendChild(td((s.error_rate * 100).toFixed(0) + " %", "num"));
      tr.appendChild(td(s.calls, "num col-wide"));
      tr.appendChild(td(s.ejected ? "for " + Math.round(s.ejected_until_seconds) + " s (" + s.ejections + "×)" :
        (s.ejections ? "no (" + s.ejections + "× before)" : "no")));
      return tr;
    });
    var body = document.getElementById("routing-rows");
    body.textContent = "";
    rows.forEach(function (tr) { body.appendChild(tr); });
  }

  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    Promise.all([getJSON("/api/coordinator/operations/?limit=25").then(render),
      getJSON("/api/coordinator/routing/").then(renderRouting)]).catch(function () {})
      .then(function () { busy = false; });
  }

  function run(form) {
    var data = new FormData(form);
    var body = {
      symbols: list(data.get("symbols")),
      size: parseFloat(data.get("size")),
      min_profit_bps: parseFloat(data.get("min_profit_bps")),
      slippage_bps: parseFloat(data.get("slippage_bps")),
    };
    var servers = list(data.get("servers"));
    if (servers.length) body.servers = servers;
    var error = document.getElementById("arbitrage-error");
    error.hidden = true;
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    postJSON("/api/coordinator/arbitrage/", body).then(function (reply) {
      if (reply.status === 200) {
        window.location.href = "/coordinator/operations/" + reply.json.operation_id + "/";
        return;
      }
      error.hidden = false;
      error.textContent = Object.keys(reply.json).map(function (key) {
        var value = reply.json[key];
        return key + ": " + (Array.isArray(value) ? value.join(" ") : value);
      }).join(" · ");
    }).catch(function (e) {
      error.hidden = false;
      error.textContent = "The request failed: " + e.message;
    }).then(function () { button.disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("arbitrage-form");
    if (form) {
      form.addEventListener("submit", function (event) { event.preventDefault(); run(form); });
      form.querySelector("button[type=submit]").disabled = false;
    }
    refresh();
    window.setInterval(refresh, 15000);
    if (window.OrchestratorEvents) {
      window.OrchestratorEvents.connect({
        streams: ["coordinator.operations"], kinds: ["started", "finished"], onEvent: refresh,
        onState: function (state) { document.getElementById("socket-state").textContent = state; },
      });
    }
  });
})();
