// Nexus dashboard: small progressive enhancements. Every page works without this file.
"use strict";

// Raw JSON as a collapsible tree, fetched when its <details> is first opened. Children are built
// when their node opens, so a multi-megabyte body costs nothing until someone looks.
function jsonNode(key, value) {
  const isObj = value !== null && typeof value === "object";
  const keyHtml = key === null ? "" : `<span class="key">${esc(JSON.stringify(key))}</span>: `;
  if (!isObj) {
    const div = document.createElement("div");
    div.className = "leaf";
    const cls = typeof value === "string" ? "str" : typeof value === "number" ? "num" : "lit";
    div.innerHTML = `${keyHtml}<span class="${cls}">${esc(JSON.stringify(value))}</span>`;
    return div;
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const d = document.createElement("details");
  const s = document.createElement("summary");
  const open = Array.isArray(value) ? "[" : "{";
  s.innerHTML = `${keyHtml}${open} <span class="count">${entries.length} ${Array.isArray(value) ? "items" : "keys"}</span>`;
  d.appendChild(s);
  d.addEventListener("toggle", () => {
    if (!d.open || d.dataset.built) return;
    d.dataset.built = "1";
    for (const [k, v] of entries) d.appendChild(jsonNode(Array.isArray(value) ? null : k, v));
  });
  return d;
}

function esc(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

for (const raw of document.querySelectorAll("details.raw[data-src]")) {
  raw.addEventListener("toggle", async () => {
    if (!raw.open || raw.dataset.loaded) return;
    raw.dataset.loaded = "1";
    const box = raw.querySelector(".jsontree");
    box.textContent = "loading…";
    try {
      const resp = await fetch(raw.dataset.src, { credentials: "same-origin" });
      const text = await resp.text();
      box.textContent = "";
      let value;
      try { value = JSON.parse(text); } catch { value = undefined; }
      if (value === undefined) {
        const pre = document.createElement("pre");
        pre.textContent = text;
        box.appendChild(pre);
      } else {
        const root = jsonNode(null, value);
        if (root.tagName === "DETAILS") root.open = true;
        box.appendChild(root);
      }
      if (resp.headers.get("x-nexus-rebuilt")) {
        const note = document.createElement("p");
        note.className = "muted small";
        note.textContent = "Rebuilt from the stream's events (a complete stream is stored as its message).";
        box.prepend(note);
      }
    } catch (err) {
      box.textContent = `could not load: ${err}`;
    }
  });
}

// Buttons that open or close every element matching their selector (system reminders, tool calls).
for (const btn of document.querySelectorAll("button[data-toggle]")) {
  btn.addEventListener("click", () => {
    const items = [...document.querySelectorAll(btn.dataset.toggle)];
    const open = !items.every((d) => d.open);
    for (const d of items) d.open = open;
  });
}

for (const btn of document.querySelectorAll("button[data-copy]")) {
  btn.addEventListener("click", async () => {
    const text = document.querySelector(btn.dataset.copy).textContent;
    try { await navigator.clipboard.writeText(text); btn.textContent = "Copied"; } catch { btn.textContent = "Select and copy"; }
  });
}

for (const sel of document.querySelectorAll("select[data-autosubmit]")) {
  sel.addEventListener("change", () => sel.form.submit());
}

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (e) => { if (!confirm(form.dataset.confirm)) e.preventDefault(); });
}

// Live pages: poll the page's version tag with If-None-Match (a 304 costs one small query), and when
// it moves, fetch the page again and swap its [data-live] regions. Paused while the tab is hidden.
// An analysis in flight needs nothing more: its run moves the conversation's tag.
const live = document.querySelector("main[data-live-src]");
if (live) {
  const every = Number(live.dataset.liveEvery || 3000);
  let tag = null;
  let busy = false;
  const poll = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const resp = await fetch(live.dataset.liveSrc, {
        credentials: "same-origin",
        headers: tag ? { "If-None-Match": tag } : {},
      });
      if (resp.status === 200) {
        const first = tag === null;
        tag = resp.headers.get("etag");
        if (!first) await refresh();
      }
    } catch { /* offline or restarting: the next tick tries again */ }
    busy = false;
  };
  const refresh = async () => {
    const html = await (await fetch(location.href, { credentials: "same-origin" })).text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const region of document.querySelectorAll("[data-live][id]")) {
      const fresh = doc.getElementById(region.id);
      if (fresh) region.replaceWith(document.importNode(fresh, true));
    }
    live.dataset.refreshed = String(Number(live.dataset.refreshed || 0) + 1);
  };
  setInterval(poll, every);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  poll();
}
