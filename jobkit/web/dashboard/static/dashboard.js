// jobkit dashboard: live fragments over server-sent events, the CSRF token on every write,
// and the charts. No inline script anywhere (the pages' CSP forbids it): all of it is here.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="jobkit-csrf"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  // Every form carries the CSRF token; fragments pushed to every page carry an empty one.
  function fillTokens(root) {
    (root || document).querySelectorAll('input[name="csrf"]').forEach(function (input) {
      if (!input.value) { input.value = csrf; }
    });
  }
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf;
  });
  document.addEventListener("submit", function (e) { fillTokens(e.target); }, true);

  // -- charts (uPlot) --------------------------------------------------------------------
  var charts = {};
  var palette = ["#2f5bd3", "#1f8a4c", "#c0362c", "#a05a00", "#7b3fc4", "#0e8a8a", "#b8336a",
                 "#596275"];

  function chartData(payload, kind) {
    var xs = payload.minutes || [];
    var names = Object.keys(payload.queues || {});
    var data = [xs];
    names.forEach(function (q) { data.push(payload.queues[q][kind]); });
    return { names: names, data: data };
  }

  function drawChart(el, payload) {
    if (typeof uPlot === "undefined") { return; }
    var kind = el.getAttribute("data-kind");
    var found = chartData(payload, kind);
    var key = el.id;
    var width = Math.max(260, el.clientWidth);
    var signature = found.names.join("|");
    if (charts[key] && charts[key].signature === signature) {
      charts[key].plot.setData(found.data);
      return;
    }
    if (charts[key]) { charts[key].plot.destroy(); }
    el.textContent = "";
    var series = [{}];
    found.names.forEach(function (q, i) {
      series.push({ label: q, stroke: palette[i % palette.length], width: 2,
                    points: { show: false }, spanGaps: false });
    });
    var opts = {
      width: width, height: 200, series: series,
      scales: { x: { time: true }, y: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } } },
      axes: [{}, { label: el.getAttribute("data-label") || "" }],
      legend: { live: false }
    };
    charts[key] = { plot: new uPlot(opts, found.data, el), signature: signature };
  }

  function drawCharts(payload) {
    document.querySelectorAll(".chart[data-kind]").forEach(function (el) { drawChart(el, payload); });
  }

  function drawHistory() {
    var node = document.getElementById("history-data");
    if (!node || typeof uPlot === "undefined") { return; }
    var payload = JSON.parse(node.textContent);
    document.querySelectorAll(".chart[data-history]").forEach(function (el) {
      var field = el.getAttribute("data-history");
      var xs = (payload.buckets || []).map(function (iso) { return Date.parse(iso) / 1000; });
      var group = payload[el.getAttribute("data-group") || "queues"] || {};
      var names = Object.keys(group);
      if (el.getAttribute("data-group") === "classes") {  // the 8 busiest: a chart stays readable
        names.sort(function (a, b) { return (group[b].runs || 0) - (group[a].runs || 0); });
        names = names.slice(0, 8);
      }
      var data = [xs];
      var series = [{}];
      names.forEach(function (n, i) {
        var values = el.getAttribute("data-group") === "classes" ? group[n].series[field]
                                                                 : group[n][field];
        data.push(values);
        series.push({ label: n, stroke: palette[i % palette.length], width: 2,
                      points: { show: false } });
      });
      el.textContent = "";
      new uPlot({ width: Math.max(260, el.clientWidth), height: 200, series: series,
                  scales: { x: { time: true } }, legend: { live: false },
                  axes: [{}, { label: el.getAttribute("data-label") || "" }] }, data, el);
    });
  }

  // -- live fragments --------------------------------------------------------------------
  function liveState(text, on) {
    var state = document.getElementById("live-state");
    if (state) {
      state.textContent = text;
      state.className = "live-state " + (on ? "on" : "off");
    }
    var lost = document.getElementById("live-lost");
    if (lost) { lost.className = "banner bad" + (on ? "" : " shown"); }
  }

  function place(name, text) {
    if (name === "chart") {
      drawCharts(JSON.parse(text));
      return;
    }
    document.querySelectorAll("[data-live]").forEach(function (el) {
      if (el.getAttribute("data-live") !== name) { return; }
      var before = el.getAttribute("data-status");
      el.innerHTML = text;
      fillTokens(el);
      if (window.htmx) { window.htmx.process(el); }
      var status = el.querySelector("[data-status]");
      var now = status ? status.getAttribute("data-status") : null;
      if (now && before && now !== before && window.htmx) {
        document.querySelectorAll('[data-refresh-on="status"]').forEach(function (t) {
          window.htmx.trigger(t, "refresh");
        });
      }
      if (now) { el.setAttribute("data-status", now); }
    });
  }

  function connect() {
    var url = document.body.getAttribute("data-live-url");
    if (!url || typeof EventSource === "undefined") { return; }
    var source = new EventSource(url);
    var names = (document.body.getAttribute("data-live-names") || "").split(" ");
    names.forEach(function (name) {
      if (!name) { return; }
      source.addEventListener(name, function (e) { place(name, e.data); liveState("live", true); });
    });
    source.onopen = function () { liveState("live", true); };
    source.onerror = function () {
      liveState("reconnecting…", false);  // EventSource tries again by itself
    };
  }

  // -- selections (dead letters) --------------------------------------------------------
  document.addEventListener("change", function (e) {
    var box = e.target;
    if (box.matches && box.matches("input[data-select-all]")) {
      document.querySelectorAll('input[name="ids"]').forEach(function (b) { b.checked = box.checked; });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    fillTokens(document);
    var initial = document.getElementById("chart-data");
    if (initial) { drawCharts(JSON.parse(initial.textContent)); }
    drawHistory();
    connect();
  });
})();
