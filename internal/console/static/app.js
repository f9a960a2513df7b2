// Phalanx console: polls /api/cluster every second and draws the pipeline;
// streams chat answers from the OpenAI-compatible API.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;

  // el builds an element; text goes in as text, never as HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "style") e.style.cssText = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c == null) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  function bytes(n) {
    n = Number(n) || 0;
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  // dtypeName is how the flags name a dtype that protojson sends by its
  // enum name ("DTYPE_F16" → "f16"; unset means f32).
  function dtypeName(d) {
    const m = /^DTYPE_(F16|Q8)$/.exec(String(d || ""));
    return m ? m[1].toLowerCase() : "f32";
  }

  function field(dl, name, value) {
    dl.append(el("dt", {}, name), el("dd", {}, value));
  }

  function bar(start, end, total) {
    const b = el("div", { class: "bar", role: "img",
      "aria-label": `layers ${start} to ${end - 1} of ${total}` });
    if (total > 0 && end > start) {
      b.append(el("span", { style: `left:${(100 * start) / total}%;width:${(100 * (end - start)) / total}%` }));
    }
    return b;
  }

  function memory(w) {
    if (!w) return "unknown";
    const total = Number(w.memoryTotalBytes) || 0, free = Number(w.memoryFreeBytes) || 0;
    return `${bytes(total - free)} used / ${bytes(total)} (${bytes(free)} free)`;
  }

  function workerBox(id, address, w, state, stage, total) {
    const box = el("li", { class: "box " + state, "data-worker": id, "data-health": state });
    const symbol = { healthy: "✓", unreachable: "✕", spare: "○", loading: "…" }[state] || "";
    box.append(el("h4", {}, id + " ", el("span", { class: "health" }, `${symbol} ${state}`)));
    box.append(el("div", { class: "addr" }, address || (w && w.address) || ""));
    const dl = el("dl");
    if (stage) {
      const s = stage.layerStart, e = stage.layerEnd;
      box.dataset.layers = `${s}-${e}`;
      box.append(bar(s, e, total));
      field(dl, "Layers", `${s}–${e - 1} (${e - s} of ${total})`);
      field(dl, "Last step", stage.lastStepLatencyMs > 0 ? `${stage.lastStepLatencyMs.toFixed(1)} ms` : "–");
    }
    field(dl, "Memory", memory(w));
    if (w) {
      field(dl, "Speed", `${Number(w.speed).toFixed(0)} layer-steps/s`);
      field(dl, "KV cache", `${bytes(w.kvCacheBytes)}, ${w.sessions} sessions`);
      const wt = Number(w.transferTotalBytes || 0), wd = Number(w.transferDoneBytes || 0);
      if (wt > 0) field(dl, "Weights", wd >= wt ? `fetched, ${bytes(wt)}` : `fetching ${(100 * wd / wt).toFixed(0)} % of ${bytes(wt)}`);
      if (w.version) field(dl, "Version", w.version);
    } else if (stage) {
      field(dl, "Status", "not registered (lease expired)");
    }
    box.append(dl);
    return box;
  }

  function render(st) {
    const total = st.numLayers || 0;
    $("model").textContent = `${st.model || "no model"} · leader ${st.leader || "none"}`;
    $("epoch").textContent = String(st.epoch);
    $("tps").textContent = (st.tokensPerSecond || 0).toFixed(1);
    $("sessions").textContent = String(st.activeSessions || 0);
    $("queue").textContent = String(st.queueDepth || 0);
    $("microbatches").textContent = String(st.microBatches || 0);
    $("dtypes").textContent = dtypeName(st.wire) + " / " + dtypeName(st.kvCache);
    $("layers").textContent = String(total);
    $("updated").textContent = new Date(st.serverTime).toLocaleTimeString();
    $("explanation").textContent = st.planExplanation || "";

    const workers = new Map((st.workers || []).map((w) => [w.id, w]));
    const inPlan = new Set();
    const stages = $("stages");
    const items = [];
    items.push(el("li", { class: "box coord", "data-role": "coordinator" },
      el("h4", {}, "Coordinator ", el("span", { class: "health" }, "embedding")),
      el("div", { class: "addr" }, st.leader || ""),
      el("dl", {}, el("dt", {}, "Runs"), el("dd", {}, "token embedding (layer input)"))));
    for (const s of st.stages || []) {
      inPlan.add(s.workerId);
      const w = workers.get(s.workerId);
      const state = !w || !w.healthy ? "unreachable" : s.ready ? "healthy" : "loading";
      items.push(el("li", { class: "arrow", "aria-hidden": "true" }, "→"));
      items.push(workerBox(s.workerId, s.address, w, state, s, total));
    }
    if (!(st.stages || []).length) {
      items.push(el("li", { class: "box unreachable" }, el("h4", {}, "No plan"), el("p", {}, "waiting for workers")));
    }
    items.push(el("li", { class: "arrow", "aria-hidden": "true" }, "→"));
    items.push(el("li", { class: "box coord", "data-role": "coordinator-head" },
      el("h4", {}, "Coordinator ", el("span", { class: "health" }, "head + sampling")),
      el("div", { class: "addr" }, st.leader || ""),
      el("dl", {}, el("dt", {}, "Runs"), el("dd", {}, "final norm, LM head, sampling, detokenizing"))));
    stages.replaceChildren(...items);

    const spares = [];
    for (const w of st.workers || []) {
      if (inPlan.has(w.id)) continue;
      spares.push(workerBox(w.id, w.address, w, w.healthy ? "spare" : "unreachable", null, total));
    }
    if (!spares.length) spares.push(el("li", { class: "muted" }, "none"));
    $("spares").replaceChildren(...spares);
  }

  async function poll() {
    try {
      const r = await fetch("/api/cluster", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      render(await r.json());
      $("conn").textContent = "live";
      $("conn").className = "conn";
    } catch (e) {
      $("conn").textContent = `connection lost (${e.message}); retrying`;
      $("conn").className = "conn lost";
    }
    setTimeout(poll, POLL_MS);
  }

  // ---- chat ----
  const keyInput = $("apikey");
  keyInput.value = localStorage.getItem("phalanx.apiKey") || "";
  keyInput.addEventListener("change", () => {
    if (keyInput.value) localStorage.setItem("phalanx.apiKey", keyInput.value);
    else localStorage.removeItem("phalanx.apiKey");
  });

  let controller = null;

  function num(id, parse) {
    const v = $(id).value.trim();
    if (v === "") return undefined;
    const n = parse(v);
    return Number.isFinite(n) ? n : undefined;
  }

  function setStatus(text, state, isError) {
    const s = $("chat-status");
    s.textContent = text;
    s.dataset.state = state;
    s.className = isError ? "error" : "muted";
  }

  async function send() {
    if (controller) return;
    const text = $("prompt").value;
    if (!text.trim()) { $("prompt").focus(); return; }
    const template = $("template").value;
    const body = { model: "phi-2", stream: true, stream_options: { include_usage: true } };
    const t = num("temperature", parseFloat), p = num("top_p", parseFloat);
    const m = num("max_tokens", (v) => parseInt(v, 10)), seed = num("seed", (v) => parseInt(v, 10));
    if (t !== undefined) body.temperature = t;
    if (p !== undefined) body.top_p = p;
    if (m !== undefined) body.max_tokens = m;
    if (seed !== undefined) body.seed = seed;
    let url;
    if (template === "raw") {
      url = "/v1/completions";
      body.prompt = text;
    } else {
      url = "/v1/chat/completions";
      body.messages = [{ role: "user", content: text }];
      body.template = template;
    }
    const headers = { "Content-Type": "application/json" };
    if (keyInput.value) headers["Authorization"] = "Bearer " + keyInput.value;

    const answer = $("answer");
    answer.textContent = "";
    answer.setAttribute("aria-busy", "true");
    $("send").disabled = true;
    $("stop").disabled = false;
    setStatus("waiting for the first token…", "streaming");
    controller = new AbortController();
    const start = performance.now();
    let first = 0, chunks = 0, usage = null, finish = "";
    try {
      const r = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: controller.signal });
      if (!r.ok) {
        let msg = `HTTP ${r.status}`;
        try { const j = await r.json(); if (j.error && j.error.message) msg += ": " + j.error.message; } catch (_) { /* not JSON */ }
        throw new Error(msg);
      }
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "", done = false;
      while (!done) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") { done = true; break; }
          const ev = JSON.parse(data);
          if (ev.error) throw new Error(ev.error.message || "stream error");
          if (ev.usage) usage = ev.usage;
          const c = ev.choices && ev.choices[0];
          if (!c) continue;
          const piece = c.delta ? c.delta.content : c.text;
          if (piece) {
            if (!first) first = performance.now();
            chunks++;
            answer.append(document.createTextNode(piece));
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
      const endT = performance.now();
      const n = usage ? usage.completion_tokens : chunks;
      const ttft = first ? (first - start) / 1000 : 0;
      const rate = first && n > 1 && endT > first ? (n - 1) / ((endT - first) / 1000) : n / ((endT - start) / 1000);
      setStatus(`Done (${finish || "end"}): ${n} tokens · time to first token ${ttft.toFixed(2)} s · ${rate.toFixed(1)} tokens/s`, "done");
    } catch (e) {
      if (e.name === "AbortError") setStatus("Stopped.", "stopped");
      else setStatus("Error: " + e.message, "error", true);
    } finally {
      answer.setAttribute("aria-busy", "false");
      controller = null;
      $("send").disabled = false;
      $("stop").disabled = true;
    }
  }

  $("chat-form").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("stop").addEventListener("click", () => { if (controller) controller.abort(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(); }
  });

  poll();
})();
