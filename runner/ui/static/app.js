// Runner dashboard: confirmations, the job page's live feed (server-sent events) and its
// metric charts (uPlot). No inline script anywhere: the pages' CSP allows only this file.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

function throttle(fn, ms) {
  let timer = null, again = false;
  return () => {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; fn(); } }, ms);
  };
}

// -- metrics: a table and one line chart per numeric metric ------------------------------
const charts = new Map();

function drawCharts(data) {
  const box = document.getElementById("charts");
  if (!box || typeof uPlot === "undefined") return;
  for (const [name, series] of Object.entries(data.series || {})) {
    let chart = charts.get(name);
    const points = [series.x, series.y];
    if (chart) { chart.setData(points); continue; }
    const holder = document.createElement("figure");
    holder.className = "chart";
    holder.dataset.metric = name;
    holder.innerHTML = "<h3></h3>";
    holder.querySelector("h3").textContent = name;
    box.appendChild(holder);
    const width = Math.max(260, Math.min(holder.getBoundingClientRect().width || 320, 720));
    chart = new uPlot({
      width, height: 200, legend: { show: false }, scales: { x: { time: false } },
      axes: [{ label: "step", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000] }, {}],
      series: [{ label: "step" }, { label: name, stroke: "#2457c5", width: 2, points: { show: series.x.length < 60 } }],
    }, points, holder);
    charts.set(name, chart);
  }
}

async function refreshMetrics(jobId) {
  const answer = await fetch(`/ui/jobs/${jobId}/metrics.json`, { credentials: "same-origin" });
  if (!answer.ok) return;
  const data = await answer.json();
  drawCharts(data);
  const table = document.getElementById("metrics-table");
  if (table || Object.keys(data.summary || {}).length) {
    const body = await fetch(`/ui/jobs/${jobId}/metrics-table`, { credentials: "same-origin" });
    if (body.ok) {
      const holder = document.getElementById("metrics-table-holder");
      if (holder) holder.innerHTML = await body.text();
      const none = document.getElementById("no-metrics");
      if (none) none.remove();
    }
  }
}

// -- the job page's live feed -------------------------------------------------------------
function appendLog(list, line, piece) {
  if (piece !== "" && !(line.piece === Number(piece) ||
      (line.start !== null && line.stop !== null && line.start <= Number(piece) && Number(piece) < line.stop))) return;
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const item = document.createElement("li");
  item.className = `lvl-${line.level}`;
  for (const [cls, text] of [["t", line.t], ["lvl", line.level], ["where", line.where], ["msg", line.msg]]) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    item.append(span, " ");
  }
  list.appendChild(item);
  while (list.children.length > 2000) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function follow(article) {
  const jobId = article.dataset.job;
  const piece = article.dataset.piece;
  const log = document.getElementById("log");
  const summary = throttle(() => {
    if (window.htmx) htmx.ajax("GET", `/ui/jobs/${jobId}/summary`, { target: "#summary", swap: "outerHTML" });
  }, 500);
  const metrics = throttle(() => refreshMetrics(jobId), 2000);
  const url = `/ui/jobs/${jobId}/live?events=${article.dataset.events}&logs=${article.dataset.logs}`;
  const source = new EventSource(url);
  source.addEventListener("job", (event) => {
    summary();
    const data = JSON.parse(event.data);
    if (data.type === "progress" || data.type === "state") metrics();
  });
  source.addEventListener("log", (event) => appendLog(log, JSON.parse(event.data), piece));
  source.addEventListener("signed-out", () => {
    source.close();
    window.location.href = "/ui/login?ended=1&next=" + encodeURIComponent(window.location.pathname);
  });
  source.onerror = () => {
    // closed for good (not a stream any more: signed out, the job deleted): the summary's
    // own request then says why (a sign-in redirect, or the 404 page)
    if (source.readyState === EventSource.CLOSED) summary();
  };
  source.addEventListener("end", () => {
    source.close();
    window.location.reload();  // the result, error and output.json are shown once it ended
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const article = document.getElementById("job");
  const data = document.getElementById("metrics-data");
  if (data) drawCharts(JSON.parse(data.textContent));
  if (article && article.dataset.final !== "true") follow(article);
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
});
