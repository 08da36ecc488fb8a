// The pairwise page: two conditions side by side, keys for left / right / tie, undo.
// Plain JavaScript, no libraries. A choice shows as saved only once the server committed it,
// and the next pair is asked for only then (the server picks it knowing this choice).
"use strict";

const state = { study: null, rater: "", pair: null, undo: [], busy: false, mine: 0, total: 0 };

function drawCounts() {
  $("counts").textContent = state.rater ? `${state.mine} compared by you · ${state.total} in all` : "";
  $("saved").textContent = state.busy ? "saving…" : state.rater ? "all saved" : "";
  $("saved").className = "saved" + (state.busy ? " busy" : "");
}

function drawSide(side, condition) {
  const tiles = $(side).querySelector(".tiles");
  tiles.replaceChildren();
  $(side).classList.remove("chosen");
  $(side).dataset.condition = condition ? condition.number : "";
  if (!condition) return;
  for (let k = 0; k < condition.images; k++) {
    tiles.append(Object.assign(document.createElement("img"), { src: `/images/${condition.number}/${k}`, alt: `${side}: image ${k + 1}` }));
  }
}

function drawPair() {
  const pair = state.pair;
  drawSide("left", pair && pair.left);
  drawSide("right", pair && pair.right);
  $("message").textContent = pair && pair.message ? pair.message : "";
  drawCounts();
}

async function nextPair() {
  if (!state.rater) { state.pair = null; drawPair(); return; }
  const pair = await api("GET", `/api/pairs/next?rater=${encodeURIComponent(state.rater)}`);
  state.pair = pair.left ? pair : { message: pair.message };
  clearTimeout(nextPair.timer);  // fewer than two conditions yet (a steered search adds them): ask again later
  if (!pair.left) nextPair.timer = setTimeout(() => nextPair().catch(() => {}), 15000);
  state.mine = pair.mine;
  state.total = pair.comparisons;
  drawPair();
}

function needRater() {
  if (state.rater) return false;
  $("rater").classList.add("missing");
  $("rater").focus();
  say("type your name first (then Enter)", true);
  return true;
}

async function send(left, right, choice) {
  state.busy = true;
  drawCounts();
  try {
    await api("POST", "/api/pairs", { rater: state.rater, left, right, choice });
    return true;
  } catch (err) {
    say(`not saved: ${err.message}`, true);
    return false;
  } finally {
    state.busy = false;
  }
}

async function choose(choice) {
  const pair = state.pair;
  if (needRater() || state.busy || !pair || !pair.left) return;
  if (choice !== "tie") $(choice).classList.add("chosen");
  const left = pair.left.number, right = pair.right.number;
  if (await send(left, right, choice)) state.undo.push({ pair, choice });
  await nextPair().catch((err) => say(err.message, true));
}

async function undo() {
  if (state.busy) return;
  const last = state.undo.pop();
  if (!last) { say("nothing to undo"); return; }
  if (!(await send(last.pair.left.number, last.pair.right.number, null))) { state.undo.push(last); return; }
  state.pair = last.pair;  // show the same pair, same sides, to judge again
  state.mine -= 1;
  state.total -= 1;
  drawPair();
  say(`undone: ${last.choice}`);
}

const KEYS = {
  ArrowLeft: () => choose("left"), 1: () => choose("left"),
  ArrowRight: () => choose("right"), 2: () => choose("right"),
  ArrowDown: () => choose("tie"), 0: () => choose("tie"), t: () => choose("tie"),
  u: () => undo(), Backspace: () => undo(), r: () => $("rater").focus(),
};

async function changeRater() {
  const name = takeName(state.rater);  // the same name as on the 1-5 page
  if (name === null) return;
  state.rater = name;
  state.undo = [];
  try { await nextPair(); } catch (err) { say(err.message, true); state.rater = ""; drawPair(); }
}

async function start() {
  state.study = await api("GET", "/api/study");
  $("study").textContent = state.study.name;
  document.title = `compare · ${state.study.name}`;
  for (const side of ["left", "right"]) {
    const tiles = $(side).querySelector(".tiles").style;
    tiles.setProperty("--rows", state.study.grid[0]);
    tiles.setProperty("--cols", state.study.grid[1]);
    tiles.setProperty("--aspect", state.study.size[0] / state.study.size[1]);
    $(side).addEventListener("click", () => choose(side));
  }
  for (const button of document.querySelectorAll(".choices button")) {
    button.addEventListener("click", () => choose(button.dataset.choice));
  }
  restoreName();
  await changeRater();
  drawPair();
  if (!state.rater) $("rater").focus();
}

document.addEventListener("keydown", keyHandler(KEYS, undo));
$("rater").addEventListener("change", changeRater);
window.addEventListener("beforeunload", (e) => { if (state.busy) e.preventDefault(); });
start().catch((err) => say(`cannot load the study: ${err.message}`, true));
