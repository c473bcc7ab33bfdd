/* One operation's page: an arbitrage run's opportunities, the quotes used (table and a Plotly chart of each
 * exchange's bid and ask per symbol), every pair's numbers, and the steps. The data is in the page. */
(function () {
  "use strict";

  function td(text, className) {
    var cell = document.createElement("td");
    cell.textContent = text === null || text === undefined ? "–" : text;
    if (className) cell.className = className;
    return cell;
  }
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

  document.addEventListener("DOMContentLoaded", function () {
    var data = JSON.parse(document.getElementById("operation-data").textContent);
    var result = data.result || {};
    fill("opportunity-rows", result.opportunities || [], function (pair) { return pairRow(pair, true); });
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
          name: server, type: "scatter", mode: "markers",
          x: own.map(function (v) { return v.symbol; }),
          y: own.map(function (v) { return ((v.bid + v.ask) / 2 - mids[v.symbol]) / mids[v.symbol] * 10000; }),
          error_y: { type: "data", symmetric: false,
            array: own.map(function (v) { return (v.ask - (v.bid + v.ask) / 2) / mids[v.symbol] * 10000; }),
            arrayminus: own.map(function (v) { return ((v.bid + v.ask) / 2 - v.bid) / mids[v.symbol] * 10000; }) },
          text: own.map(function (v) { return "bid " + v.bid + " / ask " + v.ask; }),
        };
      });
      Plotly.react("quote-chart", traces, {
        margin: { t: 10, r: 10, b: 40, l: 60 }, yaxis: { title: { text: "bps from the mean mid (bid to ask)" } },
        legend: { orientation: "h" },
      }, { responsive: true, displayModeBar: false });
    }
  });
})();
