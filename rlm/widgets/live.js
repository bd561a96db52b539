// The live view of a run. Python renders each section to HTML (the same renderer as the
// saved record); this swaps sections in as they change, keeps open <details> open, paints
// the per-call marks (grid cells, timeline bars) from the compact `calls` columns, and
// sends the Stop button's click to the kernel.
const SECTIONS = ["header", "iterations", "stream", "tree", "timeline"];
const STOP_HINT_MS = 4000;

function expand(ranges) {
  const out = [];
  for (const part of (ranges || "").split(",")) {
    if (!part) continue;
    const [a, b] = part.split("-").map(Number);
    for (let i = a; i <= (b === undefined ? a : b); i++) out.push(i);
  }
  return out;
}

function tip(calls, palette, i) {
  const parts = [`#${i}`, calls.models[calls.model[i]] || "", palette.names[calls.status[i]] || ""];
  if (calls.end[i] >= 0) parts.push(`${((calls.end[i] - calls.start[i]) / 1000).toFixed(2)} s`);
  if (calls.tokens[i]) parts.push(`${calls.tokens[i].toLocaleString()} tokens`);
  if (calls.errors[String(i)]) parts.push(calls.errors[String(i)]);
  return parts.join(" · ");
}

// Marks are kept between redraws and only touched when their call changed, so a
// 2,000-call batch costs a few style writes per frame, not a rebuild.
function paint(root, calls, palette) {
  if (!calls || !calls.start) return;
  const colour = (i) => (calls.role[i] === "R" ? palette.root : palette.status)[calls.status[i]] || "#000";
  for (const grid of root.querySelectorAll(".rlm-grid[data-calls]")) {
    const cells = grid._cells || (grid._cells = []);
    expand(grid.dataset.calls).forEach((i, k) => {
      let cell = cells[k];
      if (!cell) {
        cell = cells[k] = document.createElement("i");
        grid.append(cell);
      }
      const status = calls.status[i];
      if (cell.dataset.i !== String(i) || cell._status !== status) {
        cell.dataset.i = String(i);
        cell._status = status;
        cell.title = "";
        cell.style.background = palette.status[status] || "#000";
      }
    });
  }
  const lanes = root.querySelector(".rlm-lanes[data-span]");
  if (!lanes) return;
  const span = Math.max(Number(lanes.dataset.span) || 1, 1);
  const now = Number(lanes.dataset.now) || 0;
  const bars = lanes._bars || (lanes._bars = []);
  const relayout = lanes._span !== span;
  lanes._span = span;
  for (let i = 0; i < calls.start.length; i++) {
    let bar = bars[i];
    const status = calls.status[i];
    if (bar && !relayout && bar._status === status && status !== "r") continue;
    if (!bar) {
      bar = bars[i] = document.createElement("i");
      bar.dataset.i = String(i);
      bar.style.top = `${calls.lane[i] * palette.lane_px}px`;
      lanes.append(bar);
    }
    const start = calls.start[i];
    const end = calls.end[i] >= 0 ? calls.end[i] : Math.max(now, start);
    bar.style.left = `${((100 * start) / span).toFixed(2)}%`;
    bar.style.width = `${Math.max((100 * (end - start)) / span, 0.15).toFixed(2)}%`;
    if (bar._status !== status) {
      bar._status = status;
      bar.title = "";
      bar.style.background = colour(i);
    }
  }
}

// Python re-renders a section's HTML; keep the painted containers (by node id) across it.
function keepMarks(node, render) {
  const kept = new Map();
  for (const grid of node.querySelectorAll(".rlm-grid[data-node]")) kept.set(grid.dataset.node, grid);
  const lanes = node.querySelector(".rlm-lanes");
  render();
  for (const grid of node.querySelectorAll(".rlm-grid[data-node]")) {
    const old = kept.get(grid.dataset.node);
    if (old) {
      old.dataset.calls = grid.dataset.calls;
      grid.replaceWith(old);
    }
  }
  const fresh = node.querySelector(".rlm-lanes");
  if (lanes && fresh) {
    lanes.dataset.span = fresh.dataset.span;
    lanes.dataset.now = fresh.dataset.now;
    lanes.style.height = fresh.style.height;
    fresh.replaceWith(lanes);
  }
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = `rlm-view rlm-live ${model.get("palette").no_math}`;
  const sections = {};
  for (const name of SECTIONS) {
    const node = document.createElement("div");
    node.className = `rlm-sec rlm-sec-${name}`;
    root.append(node);
    sections[name] = node;
  }
  el.append(root);
  let stopClicked = false;

  const wireStop = () => {
    const button = sections.header.querySelector(".rlm-stop");
    if (!button) return;
    if (stopClicked && !button.hasAttribute("data-ack")) {
      button.disabled = true;
      button.textContent = "stopping…";
    }
    button.onclick = () => {
      stopClicked = true;
      button.disabled = true;
      button.textContent = "stopping…";
      model.send({ event: "stop" });
      setTimeout(() => {
        const current = sections.header.querySelector(".rlm-stop");
        if (current && !current.hasAttribute("data-ack")) {
          const hint = document.createElement("span");
          hint.className = "rlm-note";
          hint.textContent = "The kernel has not answered: use Kernel ▸ Interrupt to stop the run.";
          current.after(hint);
        }
      }, STOP_HINT_MS);
    };
  };

  const draw = (name) => {
    const node = sections[name];
    const open = new Set();
    for (const d of node.querySelectorAll("details[data-key]")) if (d.open) open.add(d.dataset.key);
    keepMarks(node, () => {
      node.innerHTML = model.get(name) || "";
    });
    for (const d of node.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
    if (name === "header") wireStop();
    // A streaming reply shows its newest text, as a terminal would.
    const reply = name === "stream" ? node.querySelector("pre") : null;
    if (reply) reply.scrollTop = reply.scrollHeight;
  };

  // Coalesce changes into one redraw per animation frame.
  const dirty = new Set(SECTIONS);
  let frame = null;
  const flush = () => {
    frame = null;
    for (const name of SECTIONS) if (dirty.has(name)) draw(name);
    if (dirty.has("tree") || dirty.has("timeline") || dirty.has("calls")) paint(root, model.get("calls"), model.get("palette"));
    dirty.clear();
  };
  const mark = (name) => () => {
    dirty.add(name);
    if (frame === null) frame = requestAnimationFrame(flush);
  };
  const listeners = [...SECTIONS, "calls"].map((name) => {
    const listener = mark(name);
    model.on(`change:${name}`, listener);
    return [name, listener];
  });
  // A click on a call (a grid cell, a timeline bar, a root call) asks the kernel for its content.
  const panel = document.createElement("div");
  panel.className = "rlm-detail";
  panel.hidden = true;
  root.append(panel);
  root.addEventListener("click", (event) => {
    const target = event.target && event.target.closest ? event.target.closest("[data-i]") : null;
    if (!target || !root.contains(target)) return;
    panel.hidden = false;
    panel.dataset.i = target.dataset.i;
    panel.innerHTML = '<div class="rlm-note">loading…</div>';
    model.send({ event: "detail", i: Number(target.dataset.i) });
  });
  const onCustom = (msg) => {
    if (!msg || msg.detail === undefined || String(msg.detail) !== panel.dataset.i) return;
    panel.innerHTML = '<button class="rlm-detail-close" title="Close">×</button>' + msg.html;
    panel.querySelector(".rlm-detail-close").onclick = () => {
      panel.hidden = true;
    };
  };
  model.on("msg:custom", onCustom);
  root.addEventListener("mouseover", (event) => {
    const target = event.target;
    const i = target && target.dataset ? target.dataset.i : undefined;
    if (i !== undefined && !target.title) target.title = tip(model.get("calls"), model.get("palette"), Number(i));
  });
  dirty.add("calls");
  flush();
  return () => {
    if (frame !== null) cancelAnimationFrame(frame);
    for (const [name, listener] of listeners) model.off(`change:${name}`, listener);
    model.off("msg:custom", onCustom);
  };
}

export default { render };
