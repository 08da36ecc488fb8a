// Shared by the rating page (app.js) and the pairwise page (pairs.js), loaded before them:
// the JSON API call, the status line, the rater's name box and the key handler around it.
"use strict";

const $ = (id) => document.getElementById(id);
const RATER_KEY = "qeuopt.rater";  // one name for both pages

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const reply = await fetch(path, options);
  const data = await reply.json().catch(() => ({ error: `HTTP ${reply.status}` }));
  if (!reply.ok) throw new Error(data.error || `HTTP ${reply.status}`);
  return data;
}

function say(message, isError = false) {
  const box = $("status");
  box.textContent = message;
  box.className = "show" + (isError ? " error" : "");
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { box.className = ""; }, isError ? 6000 : 1800);
}

function restoreName() {
  $("rater").value = localStorage.getItem(RATER_KEY) || "";
}

// The name now in the box, remembered for next time; null when it is `current` already.
function takeName(current) {
  const name = $("rater").value.trim();
  if (name === current) return null;
  localStorage.setItem(RATER_KEY, name);
  $("rater").classList.remove("missing");
  return name;
}

// Keys typed into the name box stay there (Enter or Escape leaves it); Ctrl/Cmd-Z undoes;
// any other key runs its action from `keys` once `ready()`.
function keyHandler(keys, undo, ready = () => true) {
  return (e) => {
    if (e.target === $("rater")) {
      if (e.key === "Enter" || e.key === "Escape") { e.preventDefault(); $("rater").blur(); }
      return;
    }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey || !ready()) return;
    const action = keys[e.key];
    if (!action) return;
    e.preventDefault();
    action();
  };
}
