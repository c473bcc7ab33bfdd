/* The pipeline's socket (/ws/events/) for every page: one connection, reconnect with jittered backoff, resume
 * each stream after the last sequence number seen (no gap, no duplicate), and handlers per stream pattern.
 *
 *   var live = OrchestratorEvents.connect({
 *     streams: ["quotes.*", "spreads.*"],          // what to follow (patterns)
 *     after: {"fleet.status": 12},                  // optional: resume named streams from the history
 *     onEvent: function (event) {...},              // {stream, seq, kind, server, at, payload}
 *     onGap: function (stream, missed) {...},       // events that could not be delivered
 *     onState: function (state) {...},              // "connecting" | "live" | "reconnecting"
 *     onError: function (message) {...},
 *   });
 *   live.pause(); live.resume(); live.subscribe([...]); live.unsubscribe([...]);
 * The protocol is in docs/events.md.
 */
(function () {
  "use strict";

  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 30000;

  function connect(options) {
    var streams = (options.streams || []).slice();
    var servers = options.servers || null;
    var kinds = options.kinds || null;
    var lastSeq = Object.assign({}, options.after || {}); // stream -> last sequence number handled
    var backoff = MIN_BACKOFF_MS;
    var socket = null;
    var paused = false;
    var closed = false;

    function state(value) {
      if (options.onState) options.onState(value);
    }

    function send(message) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    }

    function subscribeMessage() {
      var message = { type: "subscribe", streams: streams };
      if (servers) message.servers = servers;
      if (kinds) message.kinds = kinds;
      var after = {};
      Object.keys(lastSeq).forEach(function (stream) {
        if (lastSeq[stream] !== null && lastSeq[stream] !== undefined) after[stream] = lastSeq[stream];
      });
      if (Object.keys(after).length) message.after = after;
      return message;
    }

    function handle(message) {
      if (message.type === "batch") {
        message.events.forEach(function (event) {
          lastSeq[event.stream] = event.seq;
          if (options.onEvent) options.onEvent(event);
        });
      } else if (message.type === "gap") {
        if (options.onGap) options.onGap(message.stream, message.missed);
      } else if (message.type === "error") {
        if (options.onError) options.onError(message.message);
        else console.warn("events:", message.message);
      }
    }

    function open() {
      if (closed) return;
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      try {
        socket = new WebSocket(scheme + window.location.host + "/ws/events/");
      } catch (error) {
        retry();
        return;
      }
      socket.onopen = function () {
        backoff = MIN_BACKOFF_MS;
        state("live");
        send(subscribeMessage());
        if (paused) send({ type: "pause" });
      };
      socket.onmessage = function (frame) {
        try {
          handle(JSON.parse(frame.data));
        } catch (error) {
          console.warn("events: unreadable message", error);
        }
      };
      socket.onclose = retry;
    }

    function retry() {
      if (closed) return;
      // Jittered exponential backoff, so a restarted orchestrator is not hit by every browser at once.
      var delay = backoff * (0.75 + Math.random() * 0.5);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      state("reconnecting");
      window.setTimeout(open, delay);
    }

    state("connecting");
    open();

    return {
      pause: function () {
        paused = true;
        send({ type: "pause" });
      },
      resume: function () {
        paused = false;
        send({ type: "continue" });
      },
      subscribe: function (more) {
        more.forEach(function (pattern) {
          if (streams.indexOf(pattern) < 0) streams.push(pattern);
        });
        send({ type: "subscribe", streams: more });
      },
      unsubscribe: function (fewer) {
        streams = streams.filter(function (pattern) {
          return fewer.indexOf(pattern) < 0;
        });
        send({ type: "unsubscribe", streams: fewer });
      },
      close: function () {
        closed = true;
        if (socket) socket.close();
      },
    };
  }

  window.OrchestratorEvents = { connect: connect };
})();
