/* The overview's live market: every quotes.<symbol> tick and spreads.<symbol> change from the pipeline.
 * One row per symbol: the best bid and best ask across exchanges (and where), the cross-exchange spread, and the
 * latest quote of each exchange. Rows appear as the first events arrive.
 * The spread cell says what the market is: a normal spread ("3.2 bps", ask above bid) plainly; a crossed market
 * (the best bid above the best ask, across exchanges) as "crossed by N bps" with "arbitrage signal", in its own
 * colour, since a positive-looking number in green read as a healthy spread when it is the opposite.
 */
(function () {
  "use strict";

  var rows = {}; // symbol -> {tr, quotes: {exchange: payload}}

  function format(value) {
    if (value === null || value === undefined) return "–";
    var digits = Math.abs(value) >= 1000 ? 2 : Math.abs(value) >= 1 ? 4 : 6;
    return Number(value).toFixed(digits);
  }

  function cell(tr, field) {
    return tr.querySelector('[data-field="' + field + '"]');
  }

  function rowFor(symbol) {
    if (rows[symbol]) return rows[symbol];
    var body = document.querySelector("#market-ticker tbody");
    var tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    ["symbol", "best-bid", "best-ask", "spread", "quotes"].forEach(function (field) {
      var td = document.createElement("td");
      td.dataset.field = field;
      if (field !== "symbol" && field !== "quotes") td.className = "num";
      if (field === "quotes") td.className = "quotes-cell";
      tr.appendChild(td);
    });
    cell(tr, "symbol").textContent = symbol;
    var before = Array.prototype.find.call(body.children, function (other) {
      return other.dataset.symbol > symbol;
    });
    body.insertBefore(tr, before || null);
    document.getElementById("market-ticker").hidden = false;
    rows[symbol] = { tr: tr, quotes: {} };
    return rows[symbol];
  }

  function flash(el) {
    el.classList.remove("tick");
    void el.offsetWidth; // restart the animation
    el.classList.add("tick");
  }

  function onQuote(event) {
    var quote = event.payload;
    var row = rowFor(quote.symbol || event.stream.slice("quotes.".length));
    row.quotes[quote.exchange] = quote;
    var parts = Object.keys(row.quotes)
      .sort()
      .map(function (exchange) {
        var q = row.quotes[exchange];
        return exchange + " " + format(q.bid) + " / " + format(q.ask);
      });
    cell(row.tr, "quotes").textContent = parts.join(" · ");
  }

  function onSpread(event) {
    var spread = event.payload;
    var row = rowFor(spread.symbol);
    cell(row.tr, "best-bid").textContent = format(spread.best_bid) + " " + spread.best_bid_exchange;
    cell(row.tr, "best-ask").textContent = format(spread.best_ask) + " " + spread.best_ask_exchange;
    var spreadCell = cell(row.tr, "spread");
    spreadCell.textContent = "";
    var crossed = spread.crossed === true;
    if (crossed) {
      spreadCell.appendChild(document.createTextNode(
        "crossed by " + (spread.crossed_bps === null ? "–" : spread.crossed_bps.toFixed(1)) + " bps"));
      var note = document.createElement("span");
      note.className = "spread-note";
      note.textContent = "arbitrage signal: " + spread.best_bid_exchange + " bids above " + spread.best_ask_exchange + " asks";
      spreadCell.appendChild(note);
    } else {
      spreadCell.textContent = (spread.spread_bps === null ? "–" : spread.spread_bps.toFixed(1)) + " bps";
    }
    spreadCell.classList.toggle("crossed", crossed);
    spreadCell.title = crossed
      ? "The best bid is above the best ask across exchanges: buying on one and selling on the other could gain before fees."
      : "Best ask minus best bid across exchanges, over the mid price.";
    flash(spreadCell);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("market-ticker") || !window.OrchestratorEvents) return;
    window.OrchestratorEvents.connect({
      streams: ["quotes.*", "spreads.*"],
      onEvent: function (event) {
        if (event.stream.indexOf("quotes.") === 0) onQuote(event);
        else if (event.stream.indexOf("spreads.") === 0) onSpread(event);
      },
    });
  });
})();
