// IOTile Cloud console: the stream plot (server-reduced), the live feed and uploads. No libraries.
"use strict";

(function () {
  const $ = (root, sel) => root.querySelector(sel);

  function fmtTime(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, "");
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return "—";
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e6 || a < 1e-3) ? v.toExponential(3) : String(Math.round(v * 1000) / 1000);
  }
  function toLocalInput(ms) {
    return new Date(ms).toISOString().slice(0, 19);
  }
  function fromLocalInput(text) {
    return text ? Date.parse(text + "Z") : null;
  }

  // -- the plot -------------------------------------------------------------------------------
  function Plot(section) {
    const slug = section.dataset.slug;
    const canvas = $(section, "[data-canvas]");
    const status = $(section, "[data-status]");
    const range = $(section, "[data-range]");
    const ctx = canvas.getContext("2d");
    let view = null; // {start, end} in ms; null = everything
    let data = null;
    let timer = null;
    let seq = 0;

    function url() {
      const width = Math.max(50, Math.min(4000, Math.round(canvas.clientWidth)));
      const q = new URLSearchParams({ width: String(width) });
      if (view) {
        q.set("start", new Date(view.start).toISOString());
        q.set("end", new Date(view.end).toISOString());
      }
      return "/api/v1/stream/" + encodeURIComponent(slug) + "/plot/?" + q;
    }

    async function load() {
      const mine = ++seq;
      status.textContent = "Loading…";
      const resp = await fetch(url(), { credentials: "same-origin" });
      if (mine !== seq) return;
      if (!resp.ok) {
        status.textContent = "The plot could not be loaded (" + resp.status + ").";
        return;
      }
      data = await resp.json();
      if (!view && data.first) {
        range.start.value = toLocalInput(Date.parse(data.first));
        range.end.value = toLocalInput(Date.parse(data.last) + 1000);
      }
      draw();
    }
    function schedule(delay) {
      clearTimeout(timer);
      timer = setTimeout(load, delay === undefined ? 120 : delay);
    }

    function extent() {
      if (view) return [view.start, view.end];
      if (data && data.first) {
        const a = Date.parse(data.first), b = Date.parse(data.last);
        const pad = Math.max(1000, (b - a) * 0.02);
        return [a - pad, b + pad];
      }
      const now = Date.now();
      return [now - 3600e3, now];
    }

    function draw() {
      const ratio = window.devicePixelRatio || 1;
      const w = canvas.clientWidth, h = canvas.clientHeight;
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, w, h);
      const left = 64, right = 12, top = 12, bottom = 28;
      const [x0, x1] = extent();
      const t = data ? data.t : [], lo = data ? data.min : [], hi = data ? data.max : [];
      let y0 = Infinity, y1 = -Infinity;
      for (let i = 0; i < t.length; i++) {
        if (lo[i] !== null && lo[i] < y0) y0 = lo[i];
        if (hi[i] !== null && hi[i] > y1) y1 = hi[i];
      }
      if (!isFinite(y0)) { y0 = 0; y1 = 1; }
      if (y0 === y1) { y0 -= 1; y1 += 1; }
      const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
      const X = (ms) => left + ((ms - x0) / (x1 - x0)) * (w - left - right);
      const Y = (v) => top + (1 - (v - y0) / (y1 - y0)) * (h - top - bottom);

      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#5b6675";
      ctx.strokeStyle = "#e6eaef";
      ctx.lineWidth = 1;
      for (let i = 0; i <= 4; i++) {
        const v = y0 + ((y1 - y0) * i) / 4, y = Math.round(Y(v)) + 0.5;
        ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
        ctx.textAlign = "right"; ctx.textBaseline = "middle";
        ctx.fillText(fmtValue(v), left - 6, y);
      }
      const ticks = Math.max(2, Math.floor((w - left - right) / 170));
      for (let i = 0; i <= ticks; i++) {
        const ms = x0 + ((x1 - x0) * i) / ticks, x = Math.round(X(ms)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, h - bottom); ctx.stroke();
        ctx.textAlign = i === 0 ? "left" : i === ticks ? "right" : "center"; ctx.textBaseline = "top";
        ctx.fillText(fmtTime(ms).slice(0, 16), x, h - bottom + 6);
      }
      ctx.save();
      ctx.beginPath(); ctx.rect(left, top, w - left - right, h - top - bottom); ctx.clip();
      ctx.strokeStyle = "#0b63c5";
      ctx.fillStyle = "#0b63c5";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let pen = false;
      for (let i = 0; i < t.length; i++) {
        if (lo[i] === null) { pen = false; continue; }
        const x = X(t[i]), y = Y((lo[i] + hi[i]) / 2);
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
      if (data && data.mode === "buckets") {
        ctx.lineWidth = 1;
        ctx.beginPath();
        for (let i = 0; i < t.length; i++) {
          if (lo[i] === null) continue;
          const x = Math.round(X(t[i])) + 0.5;
          ctx.moveTo(x, Y(lo[i])); ctx.lineTo(x, Y(hi[i]) - 0.5);
        }
        ctx.stroke();
      } else if (t.length <= 300) {
        for (let i = 0; i < t.length; i++) {
          if (lo[i] === null) continue;
          ctx.beginPath(); ctx.arc(X(t[i]), Y(lo[i]), 2.5, 0, 2 * Math.PI); ctx.fill();
        }
      }
      ctx.restore();
      const count = data ? data.count : 0;
      canvas.dataset.points = String(count);
      canvas.dataset.drawn = String(t.length);
      canvas.dataset.mode = data ? data.mode : "";
      status.textContent = !count ? "No points in this range." :
        count + " points" + (data.mode === "buckets" ? ", drawn as " + t.length + " min/max buckets" : "") +
        ", " + fmtTime(x0) + " to " + fmtTime(x1) + " UTC";
    }

    function setView(start, end) {
      if (!(end > start)) return;
      view = { start, end };
      range.start.value = toLocalInput(start);
      range.end.value = toLocalInput(end);
      draw();
      schedule();
    }
    function pan(fraction) {
      const [a, b] = extent(), d = (b - a) * fraction;
      setView(a + d, b + d);
    }
    function zoom(factor, centre) {
      const [a, b] = extent(), c = centre === undefined ? (a + b) / 2 : centre;
      setView(c - (c - a) * factor, c + (b - c) * factor);
    }

    canvas.addEventListener("keydown", (e) => {
      const keys = { ArrowLeft: () => pan(-0.1), ArrowRight: () => pan(0.1), "+": () => zoom(0.5), "=": () => zoom(0.5),
        "-": () => zoom(2), "0": () => { view = null; schedule(0); } };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [a, b] = extent(), r = canvas.getBoundingClientRect();
      const frac = Math.min(1, Math.max(0, (e.clientX - r.left - 64) / (r.width - 76)));
      zoom(e.deltaY < 0 ? 0.8 : 1.25, a + (b - a) * frac);
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, ext: extent() };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const [a, b] = drag.ext, d = ((drag.x - e.clientX) / (canvas.clientWidth - 76)) * (b - a);
      view = { start: a + d, end: b + d };
      draw();
    });
    canvas.addEventListener("pointerup", () => {
      if (drag && view) setView(view.start, view.end);
      drag = null;
    });
    range.addEventListener("submit", (e) => {
      e.preventDefault();
      const a = fromLocalInput(range.start.value), b = fromLocalInput(range.end.value);
      if (a !== null && b !== null) setView(a, b);
    });
    section.querySelectorAll("[data-preset]").forEach((button) => button.addEventListener("click", () => {
      const preset = button.dataset.preset;
      if (preset === "all") { view = null; schedule(0); return; }
      const end = data && data.last && !view ? Date.parse(data.last) + 1000 : Date.now();
      setView(end - Number(preset) * 1000, end);
    }));
    window.addEventListener("resize", () => { draw(); schedule(300); });

    load();
    return { refresh: () => schedule(250) };
  }

  // -- latest points and the live feed ----------------------------------------------------------
  function Latest(table, slug, plot) {
    const body = $(table, "tbody");
    const badge = document.querySelector("[data-live-badge]");
    let live = 0;

    function row(p) {
      const tr = document.createElement("tr");
      const shown = p.output_value === null || p.output_value === undefined ? p.value : p.output_value;
      for (const [text, num] of [[p.timestamp.replace("T", " ").replace("Z", ""), false], [fmtValue(shown), true],
        [p.int_value === null ? "—" : String(p.int_value), true], [String(p.streamer_local_id), true]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (num) td.className = "num";
        tr.appendChild(td);
      }
      return tr;
    }
    function add(points) {
      for (const p of points) body.insertBefore(row(p), body.firstChild);
      while (body.rows.length > 50) body.deleteRow(body.rows.length - 1);
    }
    fetch("/api/v1/stream/" + encodeURIComponent(slug) + "/data/?lastn=20", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : { results: [] }))
      .then((page) => add(page.results))
      .finally(() => {
        const source = new EventSource("/api/v1/stream/" + encodeURIComponent(slug) + "/live/");
        source.addEventListener("open", () => { badge.hidden = false; table.dataset.live = "open"; });
        source.addEventListener("error", () => { badge.hidden = true; table.dataset.live = "closed"; });
        source.addEventListener("data", (event) => {
          const points = JSON.parse(event.data);
          live += points.length;
          table.dataset.liveCount = String(live);
          add(points);
          plot.refresh();
        });
      });
  }

  // -- uploads ------------------------------------------------------------------------------------
  function Upload(form) {
    const drop = $(form, "[data-drop]");
    const input = $(form, "input[type=file]");
    const answer = $(form, "[data-answer]");
    const kind = () => $(form, "input[name=kind]:checked").value;
    const sync = () => form.classList.toggle("event", kind() === "event");
    form.querySelectorAll("input[name=kind]").forEach((r) => r.addEventListener("change", sync));
    sync();

    async function send() {
      answer.textContent = "Uploading…";
      const body = new FormData(form);
      if (kind() !== "event") { body.delete("stream"); body.delete("timestamp"); }
      const resp = await fetch(form.action, { method: "POST", body, credentials: "same-origin",
        headers: { "X-Console-Fragment": "1" } });
      answer.innerHTML = await resp.text(); // the server's own escaped HTML fragment
      form.dataset.uploaded = String(resp.status);
    }
    form.addEventListener("submit", (e) => { e.preventDefault(); send(); });
    ["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (e) => {
      e.preventDefault(); drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      input.files = e.dataTransfer.files;
      send();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.querySelector("[data-plot]");
    if (section) {
      const plot = Plot(section);
      const table = document.querySelector("[data-latest]");
      if (table) Latest(table, section.dataset.slug, plot);
    }
    document.querySelectorAll("form[data-upload]").forEach(Upload);
  });
})();
