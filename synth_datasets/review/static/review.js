// synth-datasets review page: plain JavaScript over the JSON API of synth_datasets/review/server.py.
"use strict";

const $ = (id) => document.getElementById(id);
const S = { meta: null, order: [], pos: 0, decisions: {}, stats: null, row: null, shownAt: 0 };

// Actions run one after another, in the order of the keys pressed: a fast reviewer loses no keystroke.
let queue = Promise.resolve();
function enqueue(fn) {
  queue = queue.then(fn).catch((e) => toast(e.message, true));
  return queue;
}

function reviewer() { return $("reviewer").value.trim(); }
function reviewerKey() { return reviewer() || "anonymous"; }

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify(body) };
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

function toast(text, error) {
  const t = $("toast");
  t.textContent = text;
  t.className = "show" + (error ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, error ? 6000 : 1400);
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function table(obj) {
  const t = el("table");
  for (const [k, v] of Object.entries(obj)) t.append(el("tr", {}, el("td", {}, k), el("td", {}, fmt(v))));
  return t;
}

function labelName(value) {
  const lab = S.meta.labels.find((l) => l.value === value);
  return lab ? lab.name : fmt(value);
}

// ---- loading ------------------------------------------------------------------------------------
async function init() {
  S.meta = await api("/api/meta");
  $("source").textContent = `${S.meta.source} · ${S.meta.rows} rows · ${S.meta.reviews_file}`;
  $("reviewer").value = S.meta.reviewer || localStorage.getItem("synth-review-name") || "";
  for (const o of S.meta.orders) $("order").append(el("option", { value: o }, o));
  $("order").value = S.meta.order;
  $("merge-open").hidden = !S.meta.can_merge;
  const labels = $("labels");
  S.meta.labels.forEach((lab, i) => {
    const b = el("button", { "data-label-index": i, title: `relabel as ${lab.name}` }, lab.name + " ");
    if (i < 9) b.append(el("kbd", {}, String(i + 1)));
    b.addEventListener("click", () => decide("relabel", { label: lab.value }));
    labels.append(b);
  });
  renderGuidelines(S.meta.guidelines);
  await loadOrder();
}

async function loadOrder() {
  S.order = (await api(`/api/order?name=${encodeURIComponent($("order").value)}`)).order;
  await loadState();
  S.pos = nextOpen(-1);
  await show();
}

async function loadState() {
  const st = await api(`/api/state?reviewer=${encodeURIComponent(reviewer())}`);
  S.decisions = st.decisions;
  S.stats = st.stats;
  renderProgress();
}

function decided(row) { const d = S.decisions[String(row)]; return !!(d && d.decided); }
function skipped(row) { const d = S.decisions[String(row)]; return !!(d && d.skipped); }

// The next row after position `from` that is neither decided nor skipped; then skipped ones; -1 when all done.
function nextOpen(from) {
  const n = S.order.length;
  for (const wantSkipped of [false, true]) {
    for (let k = 1; k <= n; k++) {
      const p = (from + k + n) % n;
      const row = S.order[p];
      if (!decided(row) && skipped(row) === wantSkipped) return p;
    }
  }
  return -1;
}

// ---- rendering ----------------------------------------------------------------------------------
async function show() {
  const done = S.pos < 0;
  if (done) {
    $("done-count").textContent = S.order.length;
    $("done").hidden = false;
    $("merge").hidden = !S.meta.can_merge;
    S.pos = S.order.length - 1;
  } else {
    $("done").hidden = true;
  }
  const row = S.order[S.pos];
  S.row = await api(`/api/row/${row}?reviewer=${encodeURIComponent(reviewer())}`);
  S.shownAt = performance.now();
  renderRow();
}

function renderRow() {
  const r = S.row;
  $("row-pos").textContent = `row ${S.pos + 1} of ${S.order.length} in this order`;
  $("row-id").textContent = fmt(r.id);
  $("row-label").textContent = r.label_name ?? fmt(r.label);
  const d = S.decisions[String(r.row)];
  const status = $("row-status");
  status.className = "status";
  if (d && d.decided) {
    const kind = d.dropped ? "dropped" : d.changed ? "changed" : "accepted";
    status.textContent = kind;
    status.classList.add(kind);
  } else {
    status.textContent = d && d.skipped ? "skipped" : "open";
  }
  $("row-status").dataset.row = r.row;
  const rl = $("reviewer-label");
  rl.textContent = "";
  if (d && d.label !== null && d.label !== undefined) rl.append("→ your label ", el("span", { class: "label" }, labelName(d.label)));
  $("row-text").textContent = d && d.text ? d.text : r.text;
  $("row-note").textContent = d && d.note ? `note: ${d.note}` : "";
  document.querySelectorAll("#labels button").forEach((b) => {
    const lab = S.meta.labels[+b.dataset.labelIndex];
    const current = d && d.label !== null && d.label !== undefined ? d.label : r.label;
    b.classList.toggle("current", lab.value === current);
  });
  const ev = $("evidence");
  ev.textContent = "";
  const kinds = Object.entries(r.evidence);
  if (!kinds.length) ev.append(el("p", { class: "muted" }, "No curator columns in this dataset."));
  for (const [kind, cols] of kinds) ev.append(el("h3", { class: "muted" }, kind), table(cols));
  $("conditions").textContent = "";
  $("conditions").append(table(r.conditions));
  const nb = $("neighbours");
  nb.textContent = "";
  for (const n of r.neighbours) {
    nb.append(el("li", {}, el("span", { class: "label" }, n.label_name ?? fmt(n.label)), ` sim ${fmt(n.similarity)} · `,
                 el("span", { class: "muted" }, `id ${fmt(n.id)} `), n.text));
  }
  if (!r.neighbours.length) nb.append(el("li", { class: "muted" }, "none"));
  const pb = $("prompt-body");
  pb.textContent = "";
  $("prompt-source").textContent = r.prompt ? `(${r.prompt.source})` : "(not recorded)";
  for (const [role, text] of (r.prompt ? r.prompt.messages : [])) pb.append(el("div", { class: "msg" }, el("b", {}, role + ": "), text));
  closeEditors();
}

function renderProgress() {
  const total = S.order.length;
  const mine = S.order.filter(decided).length;
  $("progress-text").textContent = `${mine} of ${total} reviewed`;
  $("bar-fill").style.width = total ? `${(100 * mine) / total}%` : "0";
  const me = S.stats && S.stats.by_reviewer[reviewerKey()];
  const spr = me && me.seconds_per_row;
  $("pace").textContent = spr ? `· ${spr.toFixed(1)} s/row · ~${Math.ceil((spr * (total - mine)) / 60)} min left` : "";
  const body = $("stats-body");
  body.textContent = "";
  if (!S.stats) return;
  const s = S.stats;
  body.append(table({ "rows reviewed (all reviewers)": s.rows, changed: s.changed, dropped: s.dropped,
                      "κ reviewer vs LLM": s.kappa_vs_llm, "reviewers": s.reviewers.join(", ") || "—" }));
  for (const p of s.inter_annotator.pairs) {
    body.append(el("div", { class: "muted" }, `κ ${p.reviewers.join(" / ")}: ${fmt(p.kappa)} on ${p.rows} shared rows`));
  }
}

function renderGuidelines(g) {
  const body = $("guidelines-body");
  if (g.text) body.append(el("div", { class: "msg" }, g.text));
  for (const spec of g.specs) {
    body.append(el("h3", {}, `Task spec (${spec.step})`), table(spec.fields));
    for (const [role, text] of spec.messages) body.append(el("div", { class: "msg" }, el("b", {}, role + ": "), text));
  }
  for (const t of g.templates) {
    body.append(el("h3", {}, `Template (${t.step}${t.where ? " · " + t.where : ""})`));
    for (const [role, text] of t.messages) body.append(el("div", { class: "msg" }, el("b", {}, role + ": "), text));
  }
  if (!g.text && !g.specs.length && !g.templates.length) body.append(el("p", { class: "muted" }, "No task spec was recorded."));
  const labels = el("p", {}, "Labels: ");
  S.meta.labels.forEach((l, i) => labels.append(el("kbd", {}, String(i + 1)), ` ${l.name}  `));
  body.prepend(labels);
}

// ---- actions ------------------------------------------------------------------------------------
function decide(action, extra) { return enqueue(() => doDecide(action, extra)); }
function undo() { return enqueue(doUndo); }

async function doDecide(action, extra) {
  if (!S.row) return;
  const seconds = Math.min((performance.now() - S.shownAt) / 1000, 7 * 24 * 3600);  // the server's MAX_SECONDS
  const res = await api("/api/decide", { reviewer: reviewer(), row: S.row.row, action, seconds, ...(extra || {}) });
  S.decisions = res.decisions;
  S.stats = res.stats;
  toast(action === "relabel" ? `relabelled: ${labelName(res.record.label)}` : `${action} saved`);
  if (action === "note") { renderProgress(); renderRow(); return; }
  S.pos = nextOpen(S.pos);
  await show();
  renderProgress();
}

async function doUndo() {
  const res = await api("/api/undo", { reviewer: reviewer() });
  S.decisions = res.decisions;
  S.stats = res.stats;
  if (!res.undone) { renderProgress(); toast("nothing to undo"); return; }
  const p = S.order.indexOf(res.undone.row);
  if (p >= 0) S.pos = p;
  toast(`undone: ${res.undone.action}`);
  await show();
  renderProgress();
}

function openEditor() {
  $("edit-box").value = $("row-text").textContent;
  $("edit-box").hidden = $("edit-help").hidden = false;
  $("edit-box").focus();
}
function openNote() {
  const d = S.decisions[String(S.row.row)];
  $("note-box").value = d && d.note ? d.note : "";
  $("note-line").hidden = false;
  $("note-box").focus();
}
function closeEditors() {
  $("edit-box").hidden = $("edit-help").hidden = $("note-line").hidden = true;
  if (document.activeElement && ["edit-box", "note-box"].includes(document.activeElement.id)) document.activeElement.blur();
}

function move(delta) {
  return enqueue(async () => {
    const n = S.order.length;
    S.pos = ((S.pos < 0 ? 0 : S.pos) + delta + n) % n;
    await show();
  });
}

async function merge() {
  if (!confirm("Merge every decision of this round into the dataset folder (data and card are rewritten)?")) return;
  {
    const res = await api("/api/merge", {});
    const s = res.summary;
    $("merge-result").hidden = false;
    $("merge-result").textContent = `Merged: ${s.rows_in} → ${s.rows_out} rows; ${s.reviewed} reviewed, ${s.changed} changed, `
      + `${s.dropped} dropped; κ reviewer vs LLM ${fmt(s.kappa_vs_llm)}.\nCard: ${res.card}`;
    toast("merged");
    await init2();
  }
}

async function init2() {  // after a merge: a new round over the merged rows
  S.meta = await api("/api/meta");
  S.order = (await api(`/api/order?name=${encodeURIComponent($("order").value)}`)).order;
  await loadState();
  S.pos = nextOpen(-1);
  await show();
}

const handlers = {
  accept: () => decide("accept"), edit: openEditor, drop: () => decide("drop"), skip: () => decide("skip"),
  note: openNote, undo: undo, next: () => move(1), prev: () => move(-1),
};
document.querySelectorAll("#actions > button").forEach((b) => b.addEventListener("click", () => handlers[b.dataset.action]()));
$("merge").addEventListener("click", () => enqueue(merge));
$("merge-open").addEventListener("click", () => enqueue(merge));
$("guidelines-toggle").addEventListener("click", () => { $("guidelines").hidden = !$("guidelines").hidden; });
$("order").addEventListener("change", () => enqueue(loadOrder));
$("reviewer").addEventListener("change", () => enqueue(async () => {
  localStorage.setItem("synth-review-name", reviewer());
  await loadState();
  S.pos = nextOpen(-1);
  await show();
}));

document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t.id === "edit-box") {
    if (e.key === "Escape") closeEditors();
    else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); decide("edit", { text: t.value }); }
    return;
  }
  if (t.id === "note-box") {
    if (e.key === "Escape") closeEditors();
    else if (e.key === "Enter") { e.preventDefault(); decide("note", { note: t.value }); }
    return;
  }
  if (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA") {
    if (e.key === "Enter" || e.key === "Escape") t.blur();
    return;
  }
  if (e.altKey || e.metaKey) return;
  if (e.ctrlKey) { if (e.key === "z") { e.preventDefault(); undo(); } return; }
  const k = e.key;
  if (/^[1-9]$/.test(k)) {
    const lab = S.meta.labels[+k - 1];
    if (lab) decide("relabel", { label: lab.value });
  } else if (k === "a") decide("accept");
  else if (k === "e") { e.preventDefault(); openEditor(); }
  else if (k === "d") decide("drop");
  else if (k === "s") decide("skip");
  else if (k === "n") { e.preventDefault(); openNote(); }
  else if (k === "u") undo();
  else if (k === "j" || k === "ArrowRight") move(1);
  else if (k === "k" || k === "ArrowLeft") move(-1);
  else if (k === "g") $("guidelines").hidden = !$("guidelines").hidden;
  else return;
});

enqueue(init);
