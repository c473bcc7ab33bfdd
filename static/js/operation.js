/* One operation's page: an arbitrage run's opportunities, the quotes used (table and a Plotly chart of each
 * exchange's bid and ask per symbol), every pair's numbers, and the steps. The data is in the page. */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var td = dom.td, plotText = dom.plotText;

  function money(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits === undefined ? 2 : digits);
  }
  function fill(id, rows, build) {
    var body = document.getElementById(id);
    body.textContent = "";
    rows.forEach(function (row) { body.appendChild(build(row)); });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var cell = td("none");
      cell.colSpan = 8;
      cell.className = "subtle";
      tr.appendChild(cell);
      body.appendChild(tr);
    }
  }
  function pairRow(pair, withPrices) {
    var tr = document.createElement("tr");
    tr.appendChild(td(pair.symbol));
    tr.appendChild(td(pair.buy_on));
    tr.appendChild(td(pair.sell_on));
    if (withPrices) {
      tr.appendChild(td(money(pair.buy_price), "num"));
      tr.appendChild(td(money(pair.sell_price), "num"));
      tr.appendChild(td(money(pair.buy_fee + pair.sell_fee), "num col-wide"));
    } else {
      tr.appendChild(td(money(pair.gross_profit), "num"));
      tr.appendChild(td(money(pair.buy_fee + pair.sell_fee + (pair.slippage || 0)), "num col-wide"));
    }
    tr.appendChild(td(money(pair.net_profit), "num " + (pair.net_profit > 0 ? "positive" : "negative")));
    tr.appendChild(td(money(pair.net_bps, 2), "num " + (pair.net_profit > 0 ? "positive" : "negative")));
    return tr;
  }

  // One key per click: the API answers a resent request with the transaction the first one ran, never a second.
  // getRandomValues, not randomUUID: the latter exists only on https or localhost.
  function idempotencyKey() {
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    return "op-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // A refusal (409: the opportunity already executed, or this request still running) names the transaction.
  function showRefusal(error, body) {
    error.textContent = body.error + " ";
    if (body.operation_id) {
      var link = document.createElement("a");
      link.href = "/coordinator/operations/" + body.operation_id + "/";
      link.textContent = "Open transaction #" + body.transaction_id;
      error.appendChild(link);
    }
    error.hidden = false;
  }

  function execute(operationId, index, button) {
    var error = document.getElementById("execute-error");
    button.disabled = true;
    error.hidden = true;
    dom.postJSON("/api/coordinator/transactions/", {
      arbitrage: { operation_id: operationId, opportunity: index }, idempotency_key: idempotencyKey(),
    }).then(function (reply) {
      var body = reply.json;
      if (body.transaction_id) {
        showRefusal(error, body);
        return;
      }
      if (body.operation_id) {
        window.location.href = "/coordinator/operations/" + body.operation_id + "/";
        return;
      }
      error.hidden = false;
      error.textContent = Object.keys(body).map(function (k) { return k + ": " + body[k]; }).join(" · ");
    }).catch(function (e) {
      error.hidden = false;
      error.textContent = "The request failed: " + e.message;
    }).then(function () { button.disabled = false; });
  }

  function transaction(tx) {
    document.getElementById("tx-decision").textContent = tx.state + (tx.decision ? " · decision " + tx.decision : "") +
      (tx.reason ? " · " + tx.reason : "");
    fill("participant-rows", tx.participants || [], function (p) {
      var tr = document.createElement("tr");
      tr.appendChild(td(p.server));
      tr.appendChild(td(p.order.side + " " + p.order.quantity + " " + p.order.symbol));
      tr.appendChild(td(p.state));
      tr.appendChild(td(p.reservation_id, "col-wide"));
      tr.appendChild(td(p.timeline.map(function (s) {
        return s.phase + (s.ok ? " ok" : " failed") + " " + Math.round(s.duration_ms) + " ms";
      }).join(" → ")));
      return tr;
    });
    if (!window.Plotly) return;
    var colors = { prepare: "#2563eb", confirm: "#1f9d55", cancel: "#d97706", lookup: "#6b7280" };
    var traces = [];
    (tx.participants || []).forEach(function (p) {
      p.timeline.forEach(function (s) {
        traces.push({ type: "bar", orientation: "h", y: [plotText(p.server)], base: [s.started_at],
          x: [Math.max(1, s.duration_ms)], name: plotText(s.phase), showlegend: false,
          marker: { color: s.ok ? colors[s.phase] || "#2563eb" : "#d64545" },
          text: [plotText(s.phase + (s.error ? ": " + s.error : ""))], hoverinfo: "text" });
      });
    });
    var shapes = tx.decided_at ? [{ type: "line", xref: "x", yref: "paper", x0: tx.decided_at, x1: tx.decided_at,
      y0: 0, y1: 1, line: { color: "#111827", dash: "dot" } }] : [];
    Plotly.react("phase-chart", traces, { barmode: "overlay", margin: { t: 10, r: 10, b: 40, l: 100 },
      xaxis: { type: "date" }, shapes: shapes }, { responsive: true, displayModeBar: false });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var data = JSON.parse(document.getElementById("operation-data").textContent);
    var result = data.result || {};
    if (data.kind === "transaction") {
      transaction(result);
      fill("step-rows", data.steps || [], function (step) {
        var tr = document.createElement("tr");
        tr.appendChild(td(step.name + " " + step.phase));
        tr.appendChild(td(step.ok ? "ok" : "failed"));
        tr.appendChild(td(Math.round(step.duration_ms), "num"));
        tr.appendChild(td(step.error || ""));
        return tr;
      });
      return;
    }
    var canRun = !!document.querySelector("#opportunities[data-can-run]");
    fill("opportunity-rows", result.opportunities || [], function (pair) {
      var tr = pairRow(pair, true);
      if (canRun) {
        var cell = document.createElement("td");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "button";
        button.textContent = "Execute";
        button.title = "Run this opportunity as a transaction: reserve on both exchanges, then confirm or cancel both";
        button.addEventListener("click", function () { execute(data.id, (result.opportunities || []).indexOf(pair), button); });
        cell.appendChild(button);
        tr.appendChild(cell);
      }
      return tr;
    });
    fill("pair-rows", result.all_pairs || [], function (pair) { return pairRow(pair, false); });
    var views = result.views || [];
    fill("quote-rows", views, function (view) {
      var tr = document.createElement("tr");
      tr.appendChild(td(view.server));
      tr.appendChild(td(view.symbol));
      tr.appendChild(td(money(view.bid), "num"));
      tr.appendChild(td(money(view.ask), "num"));
      tr.appendChild(td(view.bid_size, "num col-wide"));
      tr.appendChild(td(view.ask_size, "num col-wide"));
      tr.appendChild(td((view.quoted_at || "").slice(11, 23), "col-wide"));
      return tr;
    });
    var failures = (result.failures || []).concat((result.excluded || []).map(function (e) {
      return { server: e.server, symbol: e.symbol, error: e.reason };
    }));
    document.getElementById("failure-list").textContent = failures.length
      ? "Left out: " + failures.map(function (f) { return f.server + " " + f.symbol + ": " + f.error; }).join(" · ")
      : "";
    fill("step-rows", data.steps || [], function (step) {
      var tr = document.createElement("tr");
      tr.appendChild(td(step.name));
      tr.appendChild(td(step.state));
      tr.appendChild(td(step.duration_ms !== null && step.duration_ms !== undefined ? Math.round(step.duration_ms) : null, "num"));
      tr.appendChild(td(step.error || ""));
      return tr;
    });
    if (window.Plotly && views.length) {
      var symbols = [];
      views.forEach(function (v) { if (symbols.indexOf(v.symbol) < 0) symbols.push(v.symbol); });
      // One panel per symbol would be best for different price levels; a relative view (bps from the symbol's mid
      // across exchanges) puts every symbol on one chart.
      var mids = {};
      symbols.forEach(function (symbol) {
        var own = views.filter(function (v) { return v.symbol === symbol; });
        mids[symbol] = own.reduce(function (a, v) { return a + (v.bid + v.ask) / 2; }, 0) / own.length;
      });
      var servers = [];
      views.forEach(function (v) { if (servers.indexOf(v.server) < 0) servers.push(v.server); });
      var traces = servers.map(function (server) {
        var own = views.filter(function (v) { return v.server === server; });
        return {
          name: plotText(server), type: "scatter", mode: "markers",
          x: own.map(function (v) { return plotText(v.symbol); }),
          y: own.map(function (v) { return ((v.bid + v.ask) / 2 - mids[v.symbol]) / mids[v.symbol] * 10000; }),
          error_y: { type: "data", symmetric: false,
            array: own.map(function (v) { return (v.ask - (v.bid + v.ask) / 2) / mids[v.symbol] * 10000; }),
            arrayminus: own.map(function (v) { return ((v.bid + v.ask) / 2 - v.bid) / mids[v.symbol] * 10000; }) },
          text: own.map(function (v) { return plotText("bid " + v.bid + " / ask " + v.ask); }),
        };
      });
      Plotly.react("quote-chart", traces, {
        margin: { t: 10, r: 10, b: 40, l: 60 }, yaxis: { title: { text: "bps from the mean mid (bid to ask)" } },
        legend: { orientation: "h" },
      }, { responsive: true, displayModeBar: false });
    }
  });
})();
