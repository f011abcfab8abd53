// The raymtl dashboard page: reads /api/ and draws every section. All text from the data goes in
// through textContent (the el() helper), never parsed as markup, so run and class names cannot inject.
"use strict";

const state = { overview: null, runs: [], timer: null };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = String(v);
    else if (k.startsWith("data-")) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
const $ = (id) => document.getElementById(id);
const pct = (x, d = 2) => (x === null || x === undefined ? "-" : (100 * x).toFixed(d));
const pm = (m, s) => (m === null || m === undefined ? "-" : `${pct(m)} ± ${pct(s)}`);

function duration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function when(iso) { return iso ? iso.replace("T", " ").replace(/(\+00:00|Z)$/, " UTC") : ""; }

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).detail || ""}`);
  return r.json();
}

function table(header, rows, opts) {
  const t = el("table", { class: (opts && opts.class) || "" });
  const tr = el("tr");
  header.forEach((h, i) => tr.appendChild(el("th", { text: h, class: opts && opts.num && opts.num[i] ? "num" : "" })));
  t.appendChild(el("thead", {}, tr));
  const body = el("tbody");
  for (const row of rows) {
    const r = el("tr");
    row.forEach((c, i) => {
      const td = el("td", { class: opts && opts.num && opts.num[i] ? "num" : "" });
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
      r.appendChild(td);
    });
    body.appendChild(r);
  }
  t.appendChild(body);
  return t;
}

function fillSelect(select, options, keep) {
  const old = select.value;
  clear(select);
  for (const [value, label] of options) select.appendChild(el("option", { value, text: label }));
  if (keep && options.some(([v]) => v === old)) select.value = old;
}

// ------------------------------------------------------------------ overview

function stateBadge(s, text, title) {
  return el("span", { class: `state state-${s}`, text: text || s, title: title || "" });
}

async function drawOverview() {
  const cards = [];  // built off-page, then swapped in at once (no flicker while refreshing)
  for (const run of state.overview.runs) {
    const card = el("div", { class: "run-card", "data-run": run.index });
    card.appendChild(el("h3", { text: run.name }));
    card.appendChild(el("div", { class: "run-uri", text: `${run.uri} · preset ${run.preset || "?"} · plan ${run.plan.source}` }));
    const kpis = el("div", { class: "kpis" });
    for (const task of run.plan.tasks) {
      const e = run.ensemble.find((x) => x.task === task);
      kpis.appendChild(el("div", { class: "kpi" },
        el("span", { class: "value ensemble-acc", "data-task": task, text: e && e.ensemble_accuracy !== null ? `${pct(e.ensemble_accuracy)} %` : "-" }),
        el("span", { class: "label", text: `${task} ensemble accuracy` + (e ? ` (${e.n_members} members)` : " (not reduced)") })));
    }
    card.appendChild(kpis);
    const data = await api(`/api/runs/${run.index}/members`);
    for (const task of run.plan.tasks) {
      const m = run.members[task];
      card.appendChild(el("div", { class: "counts", "data-task": task },
        el("strong", { text: `${task}: ` }),
        ...["done", "running", "failed", "missing"].map((s) => el("span", { class: `count-${s}`, text: `${m[s]} ${s}` }))));
      const members = data.members.filter((x) => x.task === task);
      const header = ["repeat / variant", ...run.plan.divisions.map((d) => `division ${d}`)];
      const rows = [];
      for (const v of run.plan.variants) {
        for (const r of run.plan.repeats) {
          rows.push([`r${r} ${v}`, ...run.plan.divisions.map((d) => {
            const x = members.find((y) => y.division === d && y.repeat === r && y.variant === v);
            if (!x) return "";
            const text = x.state === "done" ? `${pct(x.test_accuracy, 1)} % · ${duration(x.seconds)}`
              : x.state === "running" ? `${x.stage} ${x.epoch}/${x.epochs ?? "?"}` : x.state;
            const title = `${x.trial}: ${x.state}` + (x.reason ? ` (${x.reason})` : "") +
              (x.finished ? `, finished ${when(x.finished)}` : x.updated ? `, last report ${when(x.updated)}` : "");
            return stateBadge(x.state, text, title);
          })]);
        }
      }
      card.appendChild(table(header, rows, { class: "matrix" }));
    }
    cards.push(card);
  }
  $("overview-runs").replaceChildren(...cards);
}

// ------------------------------------------------------------------ tables I and II

async function drawTables() {
  const data = await api(`/api/tables?variant=${encodeURIComponent($("variant").value)}`);
  const runs = data.runs;
  const t1 = clear($("table1"));
  for (const [task, rows] of Object.entries(data.table1.tasks)) {
    t1.appendChild(el("h3", { text: `Table I, ${task} (${data.table1.variant})` }));
    if (!rows.length) { t1.appendChild(el("p", { class: "note", text: "no finished trial reports this task yet" })); continue; }
    const body = rows.map((r) => [r.label, ...runs.map((n) => {
      const v = r.runs[n];
      return v ? `${pm(v.mean, v.std)} (${v.n_repeats}/${v.n_trials})` : "-";
    }), r.paper ? pm(r.paper.mean, r.paper.std) : "/"]);
    const t = table(["experiment", ...runs, "paper"], body, { num: [false, ...runs.map(() => true), true] });
    t.id = `table1-${task}`;
    t1.appendChild(t);
  }
  const t2 = clear($("table2"));
  for (const [task, t] of Object.entries(data.table2.tasks)) {
    t2.appendChild(el("h3", { text: `Table II, ${task}` }));
    const p = t.paper;
    const cell = (v, k, n) => (v ? (v[k] === null ? "-" : `${pct(v[k])} (${v[n]})`) : "not reduced");
    const body = [
      ["ensemble of all members", ...runs.map((n) => cell(t.runs[n], "ensemble_accuracy", "n_members")), `${pct(p.ensemble)} (${p.members})`],
      ["8-member ensembles, mean", ...runs.map((n) => cell(t.runs[n], "eight_member_mean", "n_eight_member")),
       p.eight_member_mean === null ? "-" : `${pct(p.eight_member_mean)} (${p.n_eight_member})`],
      ["single members, mean ± std", ...runs.map((n) => (t.runs[n] ? `${pm(t.runs[n].member_mean, t.runs[n].member_std)} (${t.runs[n].n_members})` : "not reduced")), "-"],
      ...p.others.map((o) => [`${o.system} (paper's Table II)`, ...runs.map(() => ""), pct(o.accuracy, 1)]),
    ];
    const tab = table(["", ...runs, "paper"], body, { num: [false, ...runs.map(() => true), true] });
    tab.id = `table2-${task}`;
    t2.appendChild(tab);
  }
  const c = clear($("claims"));
  c.appendChild(el("h3", { text: `The paper's claims, paired over divisions and repeats (${data.claims.variant})` }));
  const body = data.claims.claims.map((k) => [k.task, k.claim, k.source, ...runs.map((n) => k.runs[n].words)]);
  const ct = table(["task", "claim", "paper", ...runs], body);
  ct.id = "claims-table";
  c.appendChild(ct);
}

// ------------------------------------------------------------------ ensemble size

async function drawSize() {
  const data = await api("/api/ensemble-size");
  const root = clear($("size-charts"));
  for (const [task, byRun] of Object.entries(data.tasks)) {
    const series = [];
    for (const [run, rows] of Object.entries(byRun)) {
      if (!rows.length) continue;
      series.push({ label: run, points: rows.map((r) => [r.members, r.mean]), band: rows.map((r) => [r.members, r.min, r.max]) });
    }
    const paper = data.paper[task] || [];
    if (paper.length) series.push({ label: "paper", points: paper.map((p) => [p.members, p.accuracy]), markersOnly: true, color: "#444" });
    const box = el("div", { class: "chart-box", "data-task": task });
    charts.lineChart(box, series, { title: `${task}: ensemble accuracy against members`, xLabel: "members",
                                    yLabel: "accuracy", percent: true, xInteger: true, xMin: 0 });
    root.appendChild(box);
  }
}

// ------------------------------------------------------------------ per class and confusion

async function drawClasses() {
  const run = $("class-run").value, task = $("class-task").value;
  const members = await api(`/api/runs/${run}/members`);
  const trials = members.trials.filter((t) => t.state === "done" && t.targets.split(",").includes(task)).map((t) => t.trial);
  const runInfo = state.overview.runs[Number(run)];
  const hasEnsemble = runInfo.ensemble.some((e) => e.task === task && e.ensemble_accuracy !== null);
  fillSelect($("class-source"), [...(hasEnsemble ? [["", "ensemble"]] : []), ...trials.map((t) => [t, t])], true);
  const summary = $("class-summary");
  if (!hasEnsemble && !trials.length) {
    clear($("per-class")); clear($("confusion")); summary.textContent = "nothing finished yet"; return;
  }
  const source = $("class-source").value;
  const q = source ? `?trial=${encodeURIComponent(source)}` : "";
  const c = await api(`/api/runs/${run}/confusion/${task}${q}`);
  const per = clear($("per-class")), conf = clear($("confusion"));
  summary.textContent = `${c.source}: ${pct(c.accuracy)} % of ${c.n_recordings} test recordings correct`;
  const rows = c.per_class.map((p) => [p.class_name, p.n, p.n_correct, p.accuracy === null ? "-" : `${pct(p.accuracy, 1)} %`, charts.shareBar(p.accuracy)]);
  const t = table(["class", "recordings", "correct", "accuracy", ""], rows, { num: [false, true, true, true, false] });
  t.id = "per-class-table";
  per.appendChild(t);
  charts.heatmap(conf, c.classes, c.matrix, { title: `confusion (${c.source}): true class by row, predicted by column` });
}

// ------------------------------------------------------------------ learning curves

async function drawCurves() {
  const run = $("curve-run").value, task = $("curve-task").value;
  const data = await api(`/api/runs/${run}/curves`);
  const all = data.tasks[task] || [];
  const experiments = [...new Set(all.map((s) => s.experiment))];
  const preferred = experiments.includes(`finetune-${task}`) ? `finetune-${task}` : experiments[0];
  const sel = $("curve-experiment");
  const old = sel.value;
  fillSelect(sel, experiments.map((e) => [e, e]));
  sel.value = experiments.includes(old) ? old : preferred || "";
  const chosen = all.filter((s) => s.experiment === sel.value);
  const root = $("curve-charts");
  const label = (s) => `d${s.division} r${s.repeat} ${s.variant}` + (s.live ? " (live)" : "");
  const mk = (key) => chosen.map((s) => ({ label: label(s), points: s.epochs.map((e) => [e.epoch, e[key]]), dashed: s.live }));
  const a = el("div", { class: "chart-box", "data-metric": "loss" });
  charts.lineChart(a, mk("loss"), { title: `${sel.value || task}: training loss`, xLabel: "epoch", yLabel: "loss", xInteger: true });
  const b = el("div", { class: "chart-box", "data-metric": "val_acc" });
  charts.lineChart(b, mk("val_acc"), { title: `${sel.value || task}: validation accuracy (per recording)`, xLabel: "epoch",
                                      yLabel: "accuracy", percent: true, xInteger: true, yMin: 0, yMax: 1 });
  root.replaceChildren(a, b);
}

// ------------------------------------------------------------------ members table

const memberSort = { key: "trial", dir: 1 };

async function drawMembers() {
  const run = $("member-run").value;
  const data = await api(`/api/runs/${run}/members`);
  const task = $("member-task").value, st = $("member-state").value, text = $("member-filter").value.toLowerCase();
  let rows = data.members.filter((m) => (!task || m.task === task) && (!st || m.state === st) &&
    (!text || `${m.trial} ${m.stage} ${m.reason}`.toLowerCase().includes(text)));
  const cols = [
    ["task", "task"], ["trial", "trial"], ["division", "division"], ["repeat", "repeat"], ["variant", "variant"],
    ["state", "state"], ["stage", "stage"], ["epoch", "epoch"], ["test_accuracy", "test acc %"],
    ["val_accuracy", "val acc %"], ["best_epoch", "best epoch"], ["seconds", "time"], ["finished", "finished"],
    ["reason", "reason"],
  ];
  rows = rows.slice().sort((a, b) => {
    const x = a[memberSort.key], y = b[memberSort.key];
    return (x === y ? 0 : x === null ? 1 : y === null ? -1 : x < y ? -1 : 1) * memberSort.dir;
  });
  const t = table(cols.map(([, h]) => h), rows.map((m) => [
    m.task, m.trial, m.division, m.repeat, m.variant, stateBadge(m.state), m.stage,
    `${m.epoch}/${m.epochs ?? "?"}`, pct(m.test_accuracy), pct(m.val_accuracy), m.best_epoch, duration(m.seconds),
    when(m.finished), m.reason,
  ]), { num: [false, false, true, true, false, false, false, true, true, true, true, true, false, false] });
  t.id = "member-rows";
  t.querySelectorAll("th").forEach((th, i) => {
    th.classList.add("sortable");
    th.title = "sort";
    th.addEventListener("click", () => {
      memberSort.dir = memberSort.key === cols[i][0] ? -memberSort.dir : 1;
      memberSort.key = cols[i][0];
      drawMembers().catch(showError);
    });
  });
  const root = clear($("member-table"));
  root.appendChild(el("p", { class: "note", text: `${rows.length} of ${data.members.length} members` }));
  root.appendChild(t);
}

// ------------------------------------------------------------------ refresh loop

function showError(e) {
  const s = $("status");
  s.textContent = `error: ${e.message}`;
  s.className = "status error";
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    state.overview = await api("/api/overview");
    const runOptions = state.overview.runs.map((r) => [String(r.index), r.name]);
    for (const id of ["class-run", "curve-run", "member-run"]) fillSelect($(id), runOptions, true);
    await drawOverview();
    await Promise.all([drawTables(), drawSize(), drawClasses(), drawCurves(), drawMembers()]);
    const s = $("status");
    s.textContent = (state.overview.live ? `live: refreshing every ${state.overview.refresh_s} s` : "finished runs") +
      ` · read ${state.overview.read_at}`;
    s.className = "status" + (state.overview.live ? " live" : "");
    document.body.dataset.ready = "1";
  } catch (e) {
    showError(e);
  }
  // While a run is live, follow it; otherwise look again now and then (a rerun, a reduce).
  state.timer = setTimeout(refresh, 1000 * (state.overview && state.overview.live ? state.overview.refresh_s : 60));
}

function wire() {
  $("variant").addEventListener("change", () => drawTables().catch(showError));
  for (const id of ["class-run", "class-task"]) $(id).addEventListener("change", () => { fillSelect($("class-source"), []); drawClasses().catch(showError); });
  $("class-source").addEventListener("change", () => drawClasses().catch(showError));
  for (const id of ["curve-run", "curve-task", "curve-experiment"]) $(id).addEventListener("change", () => drawCurves().catch(showError));
  for (const id of ["member-run", "member-task", "member-state"]) $(id).addEventListener("change", () => drawMembers().catch(showError));
  $("member-filter").addEventListener("input", () => drawMembers().catch(showError));
}

document.addEventListener("DOMContentLoaded", () => { wire(); refresh(); });
