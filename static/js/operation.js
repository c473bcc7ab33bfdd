/* One operation's page. An arbitrage run: its opportunities (top ones first, the rest behind "show all"), each with
 * gross, fees, slippage and net that add up; operators execute one after a confirmation dialog that shows both
 * orders; every pair priced; the quotes used (table and a chart of each exchange's bid and ask per symbol); the
 * steps. A transaction: each leg's fill, the profit realised against the one expected, the analysis it came from,
 * and its phases. The data is in the page; everything from servers is set as text, never as markup. */
(function () {
  "use strict";

  var dom = window.OrchestratorDom;
  var td = dom.td, plotText = dom.plotText;
  var TOP = 5; // rows shown before "show all": the report is read top down, and the best come first
  var SLIPPAGE_BPS = 10; // the room each order's limit leaves the analysed price (sent with the request)

  function money(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits === undefined ? 2 : digits);
  }
  function cents(value) { return Math.round(Number(value) * 100); }
  function fromCents(value) { return (value / 100).toFixed(2); }

  // Gross, fees, slippage and net to the cent such that the shown figures add up: the parts are rounded, and the net
  // shown is their difference (within a cent and a half of the exact net, which the title keeps).
  function figures(pair) {
    var fees = pair.fees !== undefined ? pair.fees : pair.buy_fee + pair.sell_fee;
    var gross = cents(pair.gross_profit), fee = cents(fees), slip = cents(pair.slippage || 0);
    return { gross: fromCents(gross), fees: fromCents(fee), slippage: fromCents(slip),
      net: fromCents(gross - fee - slip), exact: pair.net_profit };
  }

  function emptyRow(body, columns, text) {
    var tr = document.createElement("tr");
    var cell = td(text || "none");
    cell.colSpan = columns;
    cell.className = "subtle";
    tr.appendChild(cell);
    body.appendChild(tr);
  }

  // Rows of a table, the first `TOP` shown and the rest behind a "Show all N" button (toggles back).
  function compact(bodyId, buttonId, rows, build, columns, noun) {
    var body = document.getElementById(bodyId);
    var button = document.getElementById(buttonId);
    var all = false;
    function draw() {
      body.textContent = "";
      (all ? rows : rows.slice(0, TOP)).forEach(function (row, index) { body.appendChild(build(row, index)); });
      if (!rows.length) emptyRow(body, columns);
      if (button) {
        button.hidden = rows.length <= TOP;
        button.textContent = all ? "Show the top " + TOP + " only" : "Show all " + rows.length + " " + noun;
        button.setAttribute("aria-expanded", all ? "true" : "false");
      }
    }
    if (button) button.addEventListener("click", function () { all = !all; draw(); });
    draw();
  }

  function fill(id, rows, build, columns) {
    var body = document.getElementById(id);
    body.textContent = "";
    rows.forEach(function (row) { body.appendChild(build(row)); });
    if (!rows.length) emptyRow(body, columns);
  }

  function pairCell(pair) {
    var cell = document.createElement("td");
    var symbol = document.createElement("strong");
    symbol.textContent = pair.symbol;
    var route = document.createElement("span");
    route.className = "pair-route";
    route.textContent = "buy " + pair.buy_on + " → sell " + pair.sell_on;
    cell.appendChild(symbol);
    cell.appendChild(document.createElement("br"));
    cell.appendChild(route);
    return cell;
  }

  function pairRow(pair) {
    var f = figures(pair);
    var tone = pair.net_profit > 0 ? "positive" : "negative";
    var tr = document.createElement("tr");
    tr.appendChild(pairCell(pair));
    tr.appendChild(td(f.gross, "num col-wide"));
    tr.appendChild(td(f.fees, "num col-wide"));
    tr.appendChild(td(f.slippage, "num col-wide"));
    var net = td(f.net, "num net " + tone);
    net.title = "exact: " + f.exact;
    tr.appendChild(net);
    tr.appendChild(td(money(pair.net_bps, 2), "num col-wide " + tone));
    return tr;
  }

  // One key per confirmed execution: the API answers a resent request with the transaction the first one ran.
  // getRandomValues, not randomUUID: the latter exists only on https or localhost.
  function idempotencyKey() {
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    return "op-" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  // A refusal in words: the API's sentence, and where to go from there.
  function showRefusal(error, body) {
    error.textContent = "";
    var head = document.createElement("strong");
    var heads = { stale: "Refused: the quotes are too old. ", server_not_online: "Refused: an exchange is not online. ",
      already_executed: "Refused: already executed. ", in_progress: "Still running. " };
    head.textContent = heads[body.reason] || "Refused. ";
    error.appendChild(head);
    error.appendChild(document.createTextNode(body.error + " "));
    if (body.operation_id) {
      error.appendChild(link("/coordinator/operations/" + body.operation_id + "/", "Open transaction #" + body.transaction_id));
    } else if (body.reason === "stale") {
      error.appendChild(link("/coordinator/", "Run a new analysis"));
    }
    error.hidden = false;
  }

  function showErrors(error, body) {
    error.hidden = false;
    error.textContent = Object.keys(body).map(function (k) {
      var value = body[k];
      return k + ": " + (Array.isArray(value) ? value.join(" ") : value);
    }).join(" · ");
  }

  function execute(operationId, index) {
    var error = document.getElementById("execute-error");
    var buttons = document.querySelectorAll("#opportunity-rows button");
    Array.prototype.forEach.call(buttons, function (b) { b.disabled = true; });
    error.hidden = true;
    dom.postJSON("/api/coordinator/transactions/", {
      arbitrage: { operation_id: operationId, opportunity: index }, max_slippage_bps: SLIPPAGE_BPS,
      idempotency_key: idempotencyKey(),
    }).then(function (reply) {
      var body = reply.json;
      if (body.code) { showRefusal(error, body); return; }
      if (body.operation_id) {
        window.location.href = "/coordinator/operations/" + body.operation_id + "/";
        return;
      }
      showErrors(error, body);
    }).catch(function (e) {
      error.hidden = false;
      error.textContent = "The request failed: " + e.message;
    }).then(function () { Array.prototype.forEach.call(buttons, function (b) { b.disabled = false; }); });
  }

  // -- the confirmation dialog ---------------------------------------------------------------------------------------

  function quotedAt(result, pair) {
    var times = (result.views || []).filter(function (v) {
      return v.symbol === pair.symbol && (v.server === pair.buy_on || v.server === pair.sell_on);
    }).map(function (v) { return Date.parse(v.quoted_at); });
    return times.length === 2 ? Math.min(times[0], times[1]) : Date.parse(result.evaluated_at);
  }

  function orderItem(side, pair) {
    var li = document.createElement("li");
    li.dataset.side = side;
    function part(className, text) {
      var span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      li.appendChild(span);
    }
    function gap(text) { li.appendChild(document.createTextNode(text)); }
    part("order-side", side === "buy" ? "Buy" : "Sell");
    gap(" ");
    part("order-size", String(pair.size));
    gap(" ");
    part("order-symbol", pair.symbol);
    gap(" on ");
    part("order-server", side === "buy" ? pair.buy_on : pair.sell_on);
    gap(" at ≈ ");
    part("order-price", money(side === "buy" ? pair.buy_price : pair.sell_price));
    return li;
  }

  function confirmDialog(result, operationId) {
    var dialog = document.getElementById("execute-dialog");
    var maxAge = parseFloat(document.getElementById("opportunities").dataset.maxAge) || 30;
    var pending = null;
    document.getElementById("execute-cancel").addEventListener("click", function () { pending = null; dialog.close(); });
    dialog.addEventListener("cancel", function () { pending = null; }); // Escape
    document.getElementById("execute-confirm").addEventListener("click", function () {
      var index = pending;
      pending = null;
      dialog.close();
      if (index !== null) execute(operationId, index);
    });
    return function open(pair, index) {
      pending = index;
      var orders = document.getElementById("execute-orders");
      orders.textContent = "";
      orders.appendChild(orderItem("buy", pair));
      orders.appendChild(orderItem("sell", pair));
      var f = figures(pair);
      var list = document.getElementById("execute-figures");
      list.textContent = "";
      [["Gross", f.gross], ["Fees", "− " + f.fees], ["Slippage allowance", "− " + f.slippage],
        ["Expected net", f.net + " (" + money(pair.net_bps, 1) + " bps)"]].forEach(function (row) {
        var dt = document.createElement("dt");
        dt.textContent = row[0];
        var dd = document.createElement("dd");
        dd.textContent = row[1];
        if (row[0] === "Expected net") dd.id = "execute-net";
        list.appendChild(dt);
        list.appendChild(dd);
      });
      var age = Math.max(0, Math.round((Date.now() - quotedAt(result, pair)) / 1000));
      document.getElementById("execute-age").textContent = "Prices from quotes " + age + " s old (the analysis's). " +
        "Each order's limit allows " + SLIPPAGE_BPS + " bps worse than these prices; the server refuses quotes over " +
        maxAge + " s old, and exchanges that are not online.";
      dialog.showModal();
      document.getElementById("execute-cancel").focus();
    };
  }

  // -- a transaction -------------------------------------------------------------------------------------------------

  function addFigure(list, label, value, id) {
    var dt = document.createElement("dt");
    dt.textContent = label;
    var dd = document.createElement("dd");
    dd.textContent = value;
    if (id) dd.id = id;
    list.appendChild(dt);
    list.appendChild(dd);
  }

  function transaction(tx) {
    document.getElementById("tx-decision").textContent = tx.state + (tx.decision ? " · decision " + tx.decision : "") +
      (tx.reason ? " · " + tx.reason : "");
    var spec = (tx.parameters || {}).arbitrage;
    if (tx.analysis_id) {
      var origin = document.getElementById("tx-origin");
      origin.appendChild(document.createTextNode("Executes opportunity " + (tx.opportunity + 1) + " of "));
      var back = link("/coordinator/operations/" + tx.analysis_id + "/", "arbitrage analysis #" + tx.analysis_id);
      back.id = "tx-analysis-link";
      origin.appendChild(back);
      if (spec && spec.symbol) {
        origin.appendChild(document.createTextNode(": " + spec.symbol + ", buy " + spec.buy_on + " → sell " + spec.sell_on + "."));
      }
      origin.hidden = false;
    }
    var profit = document.getElementById("tx-profit");
    if (tx.realised) {
      var r = tx.realised;
      addFigure(profit, "Realised net profit", money(r.net_profit) + " " + r.currency, "tx-realised");
      addFigure(profit, "from", "gross " + money(r.gross_profit) + " − fees " + money(r.fees) + " " + r.currency);
      profit.hidden = false;
    }
    if (spec && spec.expected_net_profit !== undefined && spec.expected_net_profit !== null) {
      addFigure(profit, "Expected by the analysis", money(spec.expected_net_profit) + " (" +
        money(spec.expected_net_bps, 1) + " bps, after its slippage allowance)", "tx-expected");
      profit.hidden = false;
    }
    var fills = {};
    (tx.fills || []).forEach(function (f) { fills[f.server + ":" + f.side] = f; });
    fill("participant-rows", tx.participants || [], function (p) {
      var order = p.order || {};
      var got = fills[p.server + ":" + order.side];
      var tr = document.createElement("tr");
      // The leg: its server, and under it the order (or a saga step's action).
      var leg = document.createElement("td");
      var server = document.createElement("strong");
      server.textContent = p.server;
      var what = document.createElement("span");
      what.className = "pair-route";
      what.textContent = order.side ? order.side + " " + order.quantity + " " + order.symbol :
        (order.action ? order.action.tool : "");
      leg.appendChild(server);
      leg.appendChild(document.createElement("br"));
      leg.appendChild(what);
      tr.appendChild(leg);
      tr.appendChild(td(p.state));
      tr.appendChild(td(got ? money(got.price) : null, "num fill-price"));
      tr.appendChild(td(got ? money(got.notional) : null, "num col-wide"));
      tr.appendChild(td(got ? money(got.fee) + " " + (got.fee_asset || "") : null, "num col-wide"));
      tr.appendChild(td(p.reservation_id, "col-wide"));
      return tr;
    }, 6);
    fill("phase-rows", tx.participants || [], function (p) {
      var tr = document.createElement("tr");
      tr.appendChild(td(p.server));
      tr.appendChild(td(p.timeline.map(function (s) {
        return s.phase + (s.ok ? " ok" : " failed") + " " + Math.round(s.duration_ms) + " ms";
      }).join(" → ")));
      return tr;
    }, 2);
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
    Plotly.react("phase-chart", traces, { barmode: "overlay", margin: { t: 10, r: 10, b: 50, l: 90 },
      xaxis: { type: "date", nticks: 4, tickformat: "%H:%M:%S.%L", automargin: true,
        title: { text: "time of day (your clock)", standoff: 8 } }, shapes: shapes },
    { responsive: true, displayModeBar: false });
  }

  function steps(data, build) {
    var rows = data.steps || [];
    document.getElementById("steps-count").textContent = "(" + rows.length + ")";
    fill("step-rows", rows, build, 4);
  }

  // -- an arbitrage analysis -----------------------------------------------------------------------------------------

  // What was left out and why, one line per server and reason (a server in maintenance: once, not per symbol).
  function leftOut(result) {
    var grouped = {};
    var order = [];
    (result.excluded || []).map(function (e) { return { server: e.server, symbol: e.symbol, why: e.reason }; })
      .concat((result.failures || []).map(function (f) { return { server: f.server, symbol: f.symbol, why: f.error }; }))
      .forEach(function (item) {
        var key = item.server + "\u0000" + item.why;
        if (!grouped[key]) { grouped[key] = { server: item.server, why: item.why, symbols: [] }; order.push(key); }
        grouped[key].symbols.push(item.symbol);
      });
    return order.map(function (key) {
      var g = grouped[key];
      var why = g.why === "maintenance" ? "in maintenance (left out)" : g.why;
      return g.server + " (" + g.symbols.join(", ") + "): " + why;
    });
  }

  function analysis(data) {
    var result = data.result || {};
    var canRun = !!document.querySelector("#opportunities[data-can-run]");
    var opportunities = result.opportunities || [];
    var executed = {};
    (data.executions || []).forEach(function (e) { if (!(e.opportunity in executed)) executed[e.opportunity] = e; });
    var open = canRun ? confirmDialog(result, data.id) : null;
    document.getElementById("opp-count").textContent = "(" + opportunities.length + ")";
    compact("opportunity-rows", "opportunities-all", opportunities, function (pair, index) {
      var tr = pairRow(pair);
      if (canRun) {
        var cell = document.createElement("td");
        var done = executed[index];
        if (done && done.state !== "aborted") {
          cell.appendChild(link("/coordinator/operations/" + done.operation_id + "/", "#" + done.transaction_id + " " + done.state));
        } else {
          var button = document.createElement("button");
          button.type = "button";
          button.className = "button";
          button.textContent = "Execute";
          button.title = "Review both orders, then run them as one transaction: reserve on both exchanges, then confirm or cancel both";
          button.addEventListener("click", function () { open(pair, index); });
          cell.appendChild(button);
        }
        tr.appendChild(cell);
      }
      return tr;
    }, canRun ? 7 : 6, "opportunities");
    var pairs = result.all_pairs || [];
    document.getElementById("pairs-count").textContent = "(" + pairs.length + ")";
    compact("pair-rows", "pairs-all", pairs, pairRow, 6, "pairs");
    var views = result.views || [];
    document.getElementById("quotes-count").textContent = "(" + views.length + ")";
    compact("quote-rows", "quotes-all", views, function (view) {
      var tr = document.createElement("tr");
      tr.appendChild(td(view.server));
      tr.appendChild(td(view.symbol));
      tr.appendChild(td(money(view.bid), "num"));
      tr.appendChild(td(money(view.ask), "num"));
      tr.appendChild(td(view.bid_size, "num col-wide"));
      tr.appendChild(td(view.ask_size, "num col-wide"));
      tr.appendChild(td((view.quoted_at || "").slice(11, 23), "col-wide"));
      return tr;
    }, 7, "quotes");
    var lines = leftOut(result);
    document.getElementById("failure-list").textContent = lines.length ? "Left out: " + lines.join(" · ") : "";
    steps(data, function (step) {
      var tr = document.createElement("tr");
      tr.appendChild(td(step.name));
      tr.appendChild(td(step.state));
      tr.appendChild(td(step.duration_ms !== null && step.duration_ms !== undefined ? Math.round(step.duration_ms) : null, "num"));
      tr.appendChild(td(step.error || ""));
      return tr;
    });
    if (window.Plotly && views.length) quoteChart(views);
  }

  function quoteChart(views) {
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

  document.addEventListener("DOMContentLoaded", function () {
    var data = JSON.parse(document.getElementById("operation-data").textContent);
    if (data.kind === "transaction") {
      transaction(data.transaction || data.result || { participants: [] });
      steps(data, function (step) {
        var tr = document.createElement("tr");
        tr.appendChild(td(step.name + " " + step.phase));
        tr.appendChild(td(step.ok ? "ok" : "failed"));
        tr.appendChild(td(Math.round(step.duration_ms), "num"));
        tr.appendChild(td(step.error || ""));
        return tr;
      });
      return;
    }
    if (data.kind !== "arbitrage") {
      // A balanced call (or any other kind): its answer as formatted text, and its steps (the attempts).
      document.getElementById("operation-result").textContent = JSON.stringify(data.result || data.error || null, null, 2);
      steps(data, function (step) {
        var tr = document.createElement("tr");
        tr.appendChild(td(step.name));
        tr.appendChild(td(step.state || (step.ok ? "ok" : "failed")));
        tr.appendChild(td(step.duration_ms !== null && step.duration_ms !== undefined ? Math.round(step.duration_ms) : null, "num"));
        tr.appendChild(td(step.error || ""));
        return tr;
      });
      return;
    }
    analysis(data);
  });
})();
