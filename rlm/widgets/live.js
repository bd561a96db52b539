// The live view of a run. Python renders each section to HTML (the same renderer as the
// saved record); this swaps sections in as they change, keeps open <details> open, paints
// the per-call marks (grid cells, timeline bars) from the compact `calls` columns, and
// sends the Stop button's click to the kernel.
const SECTIONS = ["header", "iterations", "tree", "timeline"];
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

function paint(root, calls, palette) {
  if (!calls || !calls.start) return;
  const colour = (i) => (calls.role[i] === "R" ? palette.root : palette.status)[calls.status[i]] || "#000";
  for (const grid of root.querySelectorAll(".rlm-grid[data-calls]")) {
    let html = "";
    for (const i of expand(grid.dataset.calls)) html += `<i data-i="${i}" style="background:${palette.status[calls.status[i]] || "#000"}"></i>`;
    grid.innerHTML = html;
  }
  const lanes = root.querySelector(".rlm-lanes[data-span]");
  if (!lanes) return;
  const span = Math.max(Number(lanes.dataset.span) || 1, 1);
  let html = "";
  for (let i = 0; i < calls.start.length; i++) {
    const start = calls.start[i];
    const end = calls.end[i] >= 0 ? calls.end[i] : span;
    const left = (100 * start) / span;
    const width = Math.max((100 * (end - start)) / span, 0.15);
    html += `<i data-i="${i}" style="left:${left.toFixed(2)}%;width:${width.toFixed(2)}%;top:${calls.lane[i] * palette.lane_px}px;background:${colour(i)}"></i>`;
  }
  lanes.innerHTML = html;
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "rlm-view rlm-live";
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
    node.innerHTML = model.get(name) || "";
    for (const d of node.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
    if (name === "header") wireStop();
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
  };
}

export default { render };
