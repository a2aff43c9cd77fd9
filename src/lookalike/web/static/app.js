// the page's data: a JSON block, not a script (the Content-Security-Policy allows no inline script)
const PAGE_DATA = JSON.parse((document.getElementById("page-data") || {}).textContent || "{}");
// Lookalike pages: plain JS, no framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && body.detail && (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail))) || response.statusText);
  return body;
}

function postJSON(url, data) {
  return api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

// ---------------------------------------------------------------- search
function initSearch() {
  const systems = PAGE_DATA.systems || [];
  const select = $("system");
  for (const s of systems) select.add(new Option(s, s));
  const canvas = $("preview"), ctx = canvas.getContext("2d");
  let file = null, image = null, scale = 1, drag = null, moved = false, candidates = [], used = null;

  function parseBox(text) {
    const box = text.split(",").map(Number);
    return box.length === 4 && box.every((v) => !isNaN(v)) && box[2] > box[0] && box[3] > box[1] ? box : null;
  }
  function stroke(box, colour, width, dash) {
    ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dash);
    ctx.strokeRect(box[0] / scale, box[1] / scale, (box[2] - box[0]) / scale, (box[3] - box[1]) / scale);
    ctx.setLineDash([]);
  }
  function draw() {
    if (!image) return;
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    for (const c of candidates) stroke(c.box, "#00b3ff", 2, [6, 4]);  // items found: click one to search it
    const box = parseBox($("box").value) || used;
    if (box) stroke(box, "#ffc400", 3, []);
  }
  function setFile(f) {
    file = f; $("box").value = ""; candidates = []; used = null;
    const url = URL.createObjectURL(f);
    image = new Image();
    image.onload = () => {
      scale = Math.max(1, image.naturalWidth / 480);
      canvas.width = image.naturalWidth / scale; canvas.height = image.naturalHeight / scale;
      draw();
    };
    image.src = url;
    search();
  }
  $("file").addEventListener("change", (e) => e.target.files[0] && setFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) setFile(e.dataTransfer.files[0]); });
  const photoPoint = (e) => { const k = scale * canvas.width / canvas.clientWidth; return [e.offsetX * k, e.offsetY * k]; };
  canvas.addEventListener("pointerdown", (e) => { drag = [e.offsetX, e.offsetY]; moved = false; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const [x1, y1] = drag, x2 = e.offsetX, y2 = e.offsetY;
    if (Math.abs(x2 - x1) + Math.abs(y2 - y1) < 6) return;
    moved = true;
    const k = scale * canvas.width / canvas.clientWidth;
    $("box").value = [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)].map((v) => Math.round(v * k)).join(",");
    draw();
  });
  canvas.addEventListener("pointerup", (e) => {
    if (!drag) return;
    drag = null;
    if (!moved) {  // a click: search the smallest found box under the pointer
      const [x, y] = photoPoint(e);
      const hit = candidates.filter((c) => x >= c.box[0] && x <= c.box[2] && y >= c.box[1] && y <= c.box[3])
        .sort((a, b) => (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]) - (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))[0];
      if (!hit) return;
      $("box").value = hit.box.map(Math.round).join(",");
    }
    draw(); search();
  });
  $("box").addEventListener("change", () => { draw(); search(); });
  select.addEventListener("change", () => (file ? search() : null));
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });

  async function search() {
    if (!file) { $("status").textContent = "Choose a photo first."; return; }
    const form = new FormData();
    form.append("file", file); form.append("system", select.value); form.append("k", $("k").value);
    const box = $("box").value.trim();
    if (parseBox(box) || box === "none") form.append("box", box);
    $("status").textContent = "Searching…";
    try {
      const result = await api("/api/search", { method: "POST", body: form });
      const q = result.query;
      if (q.box_source === "auto") { candidates = q.candidates || []; used = q.box; }
      else if (q.box_source === "none") { used = null; }
      canvas.dataset.candidates = JSON.stringify(candidates.map((c) => c.box));
      const where = { auto: `the item found in the photo (${candidates.length} found: click another box, or drag to draw one)`,
        given: "your box", none: box === "none" ? "the whole photo" : "the whole photo: no item was found" }[q.box_source];
      const via = q.searched_with ? ` (photos are searched with its photo parts, ${q.searched_with})` : "";
      $("status").textContent = `${result.results.length} matches under ${result.system}${via}, searching ${where}`;
      draw();
      show(result.results);
    } catch (err) { $("status").innerHTML = ""; $("status").append(Object.assign(document.createElement("span"), { className: "error", textContent: err.message })); }
  }
  async function searchItem(itemId) {
    $("status").textContent = "Searching…";
    try {
      const result = await api(`/api/search/item?item_id=${encodeURIComponent(itemId)}&system=${encodeURIComponent(select.value)}&k=${$("k").value}`);
      $("status").textContent = `${result.results.length} matches for ${result.query.item_id} (${result.query.category}) under ${result.system}`;
      show(result.results);
    } catch (err) { $("status").textContent = err.message; }
  }
  function show(results) {
    const out = $("results"); out.innerHTML = "";
    for (const r of results) {
      const div = document.createElement("div"); div.className = "result"; div.title = "search from this item";
      const img = document.createElement("img"); img.src = r.image_url; img.alt = r.category; img.loading = "lazy";
      const cap = document.createElement("div"); cap.textContent = `${r.category} · ${r.distance.toFixed(3)}`;
      div.append(img, cap); div.dataset.itemId = r.item_id;
      div.addEventListener("click", () => searchItem(r.item_id));
      out.append(div);
    }
  }
}

// ---------------------------------------------------------------- Dope or Nope
function preload(url) { const img = new Image(); img.src = url; return img; }

function initGame() {
  let current = null, next = null, busy = false, count = 0;
  async function fetchPair() {
    const pair = await api("/api/game/pair");
    preload(pair.query.image_url); preload(pair.match.image_url);
    return pair;
  }
  function show(pair) {
    current = pair;
    $("card").dataset.pair = pair.token;  // which pair is on screen (tests wait on it)
    $("query").src = pair.query.image_url; $("match").src = pair.match.image_url;
    $("card").style.transform = "";
  }
  async function vote(verdict) {
    if (!current || busy) return;
    busy = true;
    const voting = current;
    $("card").style.transform = verdict === "dope" ? "translateX(40px) rotate(3deg)" : "translateX(-40px) rotate(-3deg)";
    try {
      const result = await postJSON("/api/game/vote", { token: voting.token, verdict });
      count += 1; $("count").textContent = count;
      $("reveal").textContent = `${verdict === "dope" ? "Dope" : "Nope"}: that was ${result.system}`;
      refreshTaste();
    } catch (err) { $("reveal").textContent = err.message; }
    show(next || (await fetchPair()));
    next = null; busy = false;
    fetchPair().then((p) => { next = p; });
  }
  $("dope").addEventListener("click", () => vote("dope"));
  $("nope").addEventListener("click", () => vote("nope"));
  document.addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") { e.preventDefault(); vote("dope"); }
    if (e.key === "ArrowLeft") { e.preventDefault(); vote("nope"); }
  });
  let startX = null;
  const card = $("card");
  card.addEventListener("touchstart", (e) => { startX = e.touches[0].clientX; }, { passive: true });
  card.addEventListener("touchmove", (e) => { if (startX !== null) card.style.transform = `translateX(${e.touches[0].clientX - startX}px)`; }, { passive: true });
  card.addEventListener("touchend", (e) => {
    if (startX === null) return;
    const dx = e.changedTouches[0].clientX - startX; startX = null;
    if (dx > 60) vote("dope"); else if (dx < -60) vote("nope"); else card.style.transform = "";
  });
  fetchPair().then((p) => { show(p); return fetchPair(); }).then((p) => { next = p; })
    .catch((err) => { $("reveal").textContent = err.message; });

  // "learn my taste": enabled after enough votes; trains in the background, with its progress shown
  let polling = null;
  async function refreshTaste() {
    let t;
    try { t = await api("/api/taste"); } catch (err) { $("taste-status").textContent = err.message; return; }
    const busy = t.state === "queued" || t.state === "training";
    $("learn-taste").disabled = busy || t.votes < t.needed;
    $("taste").dataset.state = t.state;  // tests wait on it
    $("taste-progress").hidden = !busy;
    $("taste-progress").value = t.progress;
    if (busy) $("taste-status").textContent = `Learning your taste: ${t.stage} (${Math.round(100 * t.progress)}%)`;
    else if (t.state === "ready") $("taste-status").textContent = `Your model is ready: "mine" is in the search systems, and some of your pairs now come from it. ${t.message}`;
    else if (t.state === "failed") $("taste-status").textContent = `Learning failed: ${t.message}`;
    else if (t.votes < t.needed) $("taste-status").textContent = `Vote on ${t.needed - t.votes} more pairs to learn your taste.`;
    else $("taste-status").textContent = `You have ${t.votes} votes: enough to learn your taste.`;
    if (busy && !polling) polling = setInterval(refreshTaste, 1000);
    if (!busy && polling) { clearInterval(polling); polling = null; }
  }
  $("learn-taste").addEventListener("click", async () => {
    $("learn-taste").disabled = true;
    try { await api("/api/taste/learn", { method: "POST" }); } catch (err) { $("taste-status").textContent = err.message; }
    refreshTaste();
  });
  refreshTaste();
}

// ---------------------------------------------------------------- head to head
function initDuel() {
  let current = null, busy = false, count = 0;
  async function load() {
    current = await api("/api/duel/pair");
    $("query").src = current.query.image_url; $("a").src = current.a.image_url; $("b").src = current.b.image_url;
  }
  async function pick(winner) {
    if (!current || busy) return;
    busy = true;
    try {
      const r = await postJSON("/api/duel/vote", { token: current.token, winner });
      count += 1; $("count").textContent = count;
      $("reveal").textContent = `A was ${r.a}, B was ${r.b}; you picked ${winner.toUpperCase()}`;
    } catch (err) { $("reveal").textContent = err.message; }
    try { await load(); } catch (err) { $("reveal").textContent = err.message; }
    busy = false;
  }
  $("pick-a").addEventListener("click", () => pick("a"));
  $("pick-b").addEventListener("click", () => pick("b"));
  document.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") { e.preventDefault(); pick("a"); }
    if (e.key === "ArrowRight") { e.preventDefault(); pick("b"); }
  });
  load().catch((err) => { $("reveal").textContent = err.message; });
}

// ---------------------------------------------------------------- leaderboard
async function initLeaderboard() {
  const data = await api("/api/leaderboard");
  const pct = (v) => `${(100 * v).toFixed(1)}%`;
  const fill = (id, rows, cells) => {
    const body = document.querySelector(`#${id} tbody`); body.innerHTML = "";
    rows.forEach((r, n) => {
      const tr = document.createElement("tr");
      for (const text of [n + 1, ...cells(r)]) tr.append(Object.assign(document.createElement("td"), { textContent: text }));
      body.append(tr);
    });
  };
  fill("approval", data.approval, (r) => [r.system, r.votes, r.dope, r.votes ? pct(r.rate) : "–", r.votes ? `${pct(r.ci_low)} – ${pct(r.ci_high)}` : "–"]);
  fill("duels", data.duels, (r) => [r.system, r.duels, r.wins, r.strength.toFixed(2), `${r.ci_low.toFixed(2)} – ${r.ci_high.toFixed(2)}`]);
  const left = Object.entries(data.left_out || {}).map(([flag, n]) => `${n} ${flag}`).join(", ");
  $("left-out").textContent = left ? `Left out of this leaderboard (kept in the data): ${left} votes.` : "";
}

// ---------------------------------------------------------------- map
function initMap() {
  const maps = PAGE_DATA.maps || [];
  const select = $("map-model");
  for (const m of maps) select.add(new Option(m, m));
  if (!maps.length) { $("map-info").textContent = "No map yet: run lookalike map --model NAME"; return; }
  const canvas = $("map"), ctx = canvas.getContext("2d"), tip = $("map-tip");
  let data = null, atlas = null, zoom = 1, ox = 0, oy = 0, drag = null;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const colour = (c) => palette[data.categories.indexOf(c) % palette.length];
  const pos = (p) => [ox + p.x * (canvas.width - 40) * zoom + 20, oy + p.y * (canvas.height - 40) * zoom + 20];
  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const t = data.atlas.thumb, size = Math.max(6, Math.min(48, 14 * zoom));
    data.points.forEach((p, n) => {
      const [x, y] = pos(p);
      if (x < -size || y < -size || x > canvas.width || y > canvas.height) return;
      ctx.fillStyle = colour(p.category); ctx.fillRect(x - 1, y - 1, size + 2, size + 2);
      if (atlas && size >= 10) ctx.drawImage(atlas, (n % data.atlas.columns) * t, Math.floor(n / data.atlas.columns) * t, t, t, x, y, size, size);
    });
  }
  async function load(model) {
    data = await api(`/api/map/${encodeURIComponent(model)}`);
    $("map-info").textContent = `${data.sample} items · trustworthiness ${data.trustworthiness.toFixed(3)}`;
    $("legend").replaceChildren(...data.categories.map((c) => {  // built as elements: no inline style attribute
      const swatch = document.createElement("i"); swatch.style.background = colour(c);
      const span = document.createElement("span"); span.append(swatch, c); return span;
    }));
    atlas = new Image(); atlas.onload = draw; atlas.src = `/api/map/${encodeURIComponent(model)}/atlas.png`;
    zoom = 1; ox = 0; oy = 0; draw();
  }
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const k = e.deltaY < 0 ? 1.2 : 1 / 1.2, r = canvas.getBoundingClientRect();
    const mx = (e.clientX - r.left) * canvas.width / r.width, my = (e.clientY - r.top) * canvas.height / r.height;
    ox = mx - (mx - ox) * k; oy = my - (my - oy) * k; zoom *= k; draw();
  }, { passive: false });
  canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; });
  window.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("pointermove", (e) => {
    const r = canvas.getBoundingClientRect();
    if (drag) { ox += (e.clientX - drag[0]) * canvas.width / r.width; oy += (e.clientY - drag[1]) * canvas.height / r.height; drag = [e.clientX, e.clientY]; draw(); return; }
    if (!data) return;
    const mx = (e.clientX - r.left) * canvas.width / r.width, my = (e.clientY - r.top) * canvas.height / r.height;
    const size = Math.max(6, Math.min(48, 14 * zoom));
    const hit = data.points.find((p) => { const [x, y] = pos(p); return mx >= x && mx <= x + size && my >= y && my <= y + size; });
    if (!hit) { tip.hidden = true; return; }
    tip.hidden = false; tip.style.left = `${e.clientX - r.left + 12}px`; tip.style.top = `${e.clientY - r.top + 12}px`;
    tip.innerHTML = ""; const img = new Image(); img.src = `/items/${encodeURIComponent(hit.item_id)}/image`;
    tip.append(img, document.createTextNode(`${hit.category} · ${hit.item_id}`));
  });
  select.addEventListener("change", () => load(select.value));
  load(maps[0]);
}

const PAGE = PAGE_DATA.page || "";
({ search: initSearch, game: initGame, duel: initDuel, leaderboard: initLeaderboard, map: initMap }[PAGE] || (() => {}))();
