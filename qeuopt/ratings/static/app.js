// The rating page. Plain JavaScript, no libraries: it must work offline and stay small.
// The server is the truth: a rating shows as saved only once the server has committed it.
"use strict";

const state = {
  study: null, conditions: [], at: 0, image: 0, rater: "",
  ratings: new Map(),   // "condition/image" -> 1..5 or "skip", this rater's only
  pending: new Set(),   // keys sent but not acknowledged yet
  undo: [],             // {condition, image, previous} newest last
  onlyUnrated: false, shown: null,
};
let queue = Promise.resolve();  // ratings go out one at a time, so they arrive in order
let inFlight = 0;

const key = (condition, image) => `${condition}/${image}`;
const current = () => state.conditions[state.at];

// ---- what is rated ---------------------------------------------------------------
function isDone(condition) {
  for (let k = 0; k < condition.images; k++) if (!state.ratings.has(key(condition.number, k))) return false;
  return true;
}

function navigable() {  // indexes of the conditions that arrow keys and n/p visit
  return state.conditions.map((c, i) => i).filter(
    (i) => !state.onlyUnrated || i === state.at || !isDone(state.conditions[i]));
}

async function loadRatings() {
  state.ratings.clear();
  state.undo = [];
  if (!state.rater) return;
  const data = await api("GET", `/api/ratings?rater=${encodeURIComponent(state.rater)}`);
  for (const r of data.ratings) state.ratings.set(key(r.condition, r.image), r.rating);
}

// ---- drawing ----------------------------------------------------------------------
function drawCondition() {
  const c = current();
  const grid = $("grid");
  grid.replaceChildren();
  state.shown = c ? c.number : null;
  if (!c) { grid.innerHTML = '<div class="done">No finished conditions yet.</div>'; return; }
  $("title").innerHTML = "";
  $("title").append(`Condition #${c.number} `,
    Object.assign(document.createElement("span"), { className: "muted", textContent: `(${state.at + 1} of ${state.conditions.length})` }));
  $("factors").replaceChildren(...Object.entries(c.values).map(([name, level]) => {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("th"), { textContent: name }),
               Object.assign(document.createElement("td"), { textContent: level }));
    return row;
  }));
  $("prompt").textContent = c.prompt;
  $("gridlink").href = `/images/${c.number}/grid`;
  for (let k = 0; k < c.images; k++) grid.append(cell(c, k));
  preload(state.at + 1);
}

function cell(c, k) {
  const figure = document.createElement("figure");
  figure.className = "cell";
  figure.dataset.image = k;
  const img = Object.assign(document.createElement("img"), { src: `/images/${c.number}/${k}`, alt: `image ${k}, seed ${c.seeds[k]}` });
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  for (const value of [1, 2, 3, 4, 5, "skip"]) {
    const b = Object.assign(document.createElement("button"), { type: "button", textContent: value, tabIndex: -1 });
    b.dataset.value = value;
    b.addEventListener("click", (e) => { e.stopPropagation(); state.image = k; rate(value); });
    buttons.append(b);
  }
  figure.append(img, Object.assign(document.createElement("span"), { className: "index", textContent: `${k + 1} · seed ${c.seeds[k]}` }),
                Object.assign(document.createElement("span"), { className: "badge" }), buttons);
  figure.addEventListener("click", () => { state.image = k; drawMarks(); });
  return figure;
}

function preload(index) {
  const next = state.conditions[index];
  if (next) for (let k = 0; k < next.images; k++) new Image().src = `/images/${next.number}/${k}`;
}

function drawMarks() {
  const c = current();
  if (!c) return;
  if (state.shown !== c.number) drawCondition();
  for (const figure of $("grid").children) {
    const k = Number(figure.dataset.image);
    const value = state.ratings.get(key(c.number, k));
    figure.classList.toggle("focus", k === state.image);
    figure.classList.toggle("rated", typeof value === "number");
    figure.classList.toggle("skipped", value === "skip");
    figure.classList.toggle("pending", state.pending.has(key(c.number, k)));
    figure.querySelector(".badge").textContent = value === undefined ? "" : value === "skip" ? "skip" : `★ ${value}`;
    for (const b of figure.querySelectorAll("button")) b.classList.toggle("on", String(value) === b.dataset.value);
  }
  drawProgress();
  history.replaceState(null, "", `#c=${c.number}&i=${state.image}`);
}

function drawProgress() {
  const total = state.conditions.reduce((n, c) => n + c.images, 0);
  const known = new Set(state.conditions.map((c) => c.number));
  const rated = [...state.ratings.keys()].filter((k) => known.has(Number(k.split("/")[0]))).length;
  const complete = state.conditions.filter(isDone).length;
  $("progress-text").textContent = `${rated} / ${total} images rated · ${complete} / ${state.conditions.length} conditions`;
  $("progress-bar").style.width = total ? `${(100 * rated) / total}%` : "0";
  $("saved").textContent = inFlight ? "saving…" : state.rater ? "all saved" : "";
  $("saved").className = "saved" + (inFlight ? " busy" : "");
}

// ---- moving -----------------------------------------------------------------------
function goCondition(step, imageAt = 0) {
  const order = navigable();
  const here = order.indexOf(state.at);
  const target = order[here + step];
  if (target === undefined) { say(step > 0 ? "last condition" : "first condition"); return false; }
  state.at = target;
  state.image = imageAt === "last" ? current().images - 1 : imageAt;
  drawMarks();
  return true;
}

function move(step) {
  const next = state.image + step;
  if (next < 0) return goCondition(-1, "last");
  if (next >= current().images) return goCondition(1, 0);
  state.image = next;
  drawMarks();
}

function moveRow(step) {
  const cols = state.study.grid[1];
  const next = state.image + step * cols;
  if (next >= 0 && next < current().images) { state.image = next; drawMarks(); }
}

function advance() {  // after a rating: the next image, or the next unfinished condition
  if (state.image + 1 < current().images) { state.image += 1; drawMarks(); return; }
  const order = navigable();
  const later = order.filter((i) => i > state.at && !isDone(state.conditions[i]));
  if (later.length) { state.at = later[0]; state.image = 0; drawMarks(); return; }
  if (!goCondition(1, 0)) { drawMarks(); if (state.conditions.every(isDone)) say("every image is rated: thank you!"); }
}

// ---- rating -----------------------------------------------------------------------
function needRater() {
  if (state.rater) return false;
  // the box is not focused for the user: the key just pressed was meant as a rating, and
  // the next ones would become part of the name ("4newcomer")
  $("rater").classList.add("missing");
  say("press r (or click the name box), type your name, then Enter", true);
  return true;
}

function setRating(condition, image, value) {
  const k = key(condition, image);
  if (value === null) state.ratings.delete(k); else state.ratings.set(k, value);
  state.pending.add(k);
  inFlight += 1;
  const body = { rater: state.rater, condition, image, rating: value };
  queue = queue.then(() => api("POST", "/api/ratings", body))
    .then(() => { state.pending.delete(k); })
    .catch(async (err) => { say(`not saved: ${err.message}`, true); state.pending.delete(k); await loadRatings(); })
    .finally(() => { inFlight -= 1; drawMarks(); });
}

function rate(value) {
  const c = current();
  if (!c || needRater()) return;
  const previous = state.ratings.get(key(c.number, state.image));
  state.undo.push({ condition: c.number, image: state.image, previous: previous === undefined ? null : previous });
  setRating(c.number, state.image, value);
  advance();
}

function undo() {
  const last = state.undo.pop();
  if (!last) { say("nothing to undo"); return; }
  state.at = state.conditions.findIndex((c) => c.number === last.condition);
  state.image = last.image;
  setRating(last.condition, last.image, last.previous);
  drawMarks();
  say("undone");
}

// ---- input ------------------------------------------------------------------------
const KEYS = {
  ArrowRight: () => move(1), ArrowLeft: () => move(-1), ArrowDown: () => moveRow(1), ArrowUp: () => moveRow(-1),
  PageDown: () => goCondition(1), n: () => goCondition(1), "]": () => goCondition(1),
  PageUp: () => goCondition(-1), p: () => goCondition(-1), "[": () => goCondition(-1),
  0: () => rate("skip"), s: () => rate("skip"), u: () => undo(), Backspace: () => undo(),
  f: () => { $("unrated").checked = !$("unrated").checked; toggleFilter(); },
  r: () => $("rater").focus(),
};
for (const d of [1, 2, 3, 4, 5]) KEYS[d] = () => rate(d);

function toggleFilter() {
  state.onlyUnrated = $("unrated").checked;
  if (state.onlyUnrated && isDone(current())) advance();
  drawMarks();
}

async function changeRater() {
  const name = takeName(state.rater);
  if (name === null) return;
  state.rater = name;
  try { await loadRatings(); } catch (err) { say(err.message, true); state.rater = ""; }
  drawMarks();
}

async function refreshConditions() {  // a steered search adds conditions while people rate
  const study = await api("GET", "/api/study");
  if (study.conditions.length === state.conditions.length) return;
  const here = current() && current().number;
  state.conditions = study.conditions;
  state.at = Math.max(0, state.conditions.findIndex((c) => c.number === here));
  drawMarks();
  say(`${study.conditions.length} conditions now`);
}

async function start() {
  state.study = await api("GET", "/api/study");
  state.conditions = state.study.conditions;
  $("study").textContent = state.study.name;
  document.title = `rate · ${state.study.name}`;
  const [rows, cols] = state.study.grid;
  const grid = $("grid").style;
  grid.setProperty("--rows", rows); grid.setProperty("--cols", cols);
  grid.setProperty("--aspect", state.study.size[0] / state.study.size[1]);
  const place = new URLSearchParams(location.hash.slice(1));  // a reload comes back to the same image
  const at = state.conditions.findIndex((c) => c.number === Number(place.get("c")));
  if (at >= 0) { state.at = at; state.image = Math.min(Number(place.get("i")) || 0, current().images - 1); }
  restoreName();
  await changeRater();
  drawCondition();
  drawMarks();
  if (!state.rater) { $("rater").classList.add("missing"); say("press r (or click the name box) to type your name"); }
  setInterval(() => refreshConditions().catch(() => {}), 15000);
}

document.addEventListener("keydown", keyHandler(KEYS, undo, () => state.conditions.length > 0));
$("rater").addEventListener("change", changeRater);
$("unrated").addEventListener("change", toggleFilter);
window.addEventListener("beforeunload", (e) => { if (inFlight) e.preventDefault(); });
start().catch((err) => say(`cannot load the study: ${err.message}`, true));
