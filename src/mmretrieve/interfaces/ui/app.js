// mmretrieve search page. Plain JavaScript, no dependencies; it only calls this server's API.
// Every piece of result text goes into the page through textContent (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: null, imageUrl: null, result: null, terms: [], apiKey: null };
const STOP = new Set(["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in",
  "is", "it", "of", "on", "or", "the", "to", "was", "what", "when", "where", "who", "why", "with"]);
const SNIPPET = 360;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function headers() {
  return state.apiKey ? { "X-API-Key": state.apiKey } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function showWarnings(list) {
  const box = $("warnings");
  box.textContent = (list || []).map((w) => "Warning: " + w).join("\n");
  box.hidden = !(list && list.length);
}

function setStatus(message) {
  $("status").textContent = message;
}

async function errorText(response) {
  try {
    const data = await response.json();
    if (typeof data.detail === "string") return data.detail;
    if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg || String(d)).join("; ");
  } catch (_) { /* not JSON */ }
  return response.status + " " + response.statusText;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("api-key-box").hidden = false;
    $("api-key").focus();
    throw new Error("This server needs an API key: enter it above and search again.");
  }
  if (!response.ok) {
    const prefix = response.status === 413 ? "Too large: " : "";
    throw new Error(prefix + (await errorText(response)));
  }
  return response;
}

// Images: plain URLs, or blobs fetched with the API key header when a key is in use.
function loadImage(img, url) {
  if (!state.apiKey) {
    img.src = url;
    return;
  }
  fetch(url, { headers: headers() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
    .then((blob) => { img.src = URL.createObjectURL(blob); })
    .catch(() => { img.alt = "(image unavailable) " + img.alt; });
}

function openOriginal(event, url) {
  if (!state.apiKey) return; // the link works as it is
  event.preventDefault();
  fetch(url, { headers: headers() })
    .then((r) => r.blob())
    .then((blob) => window.open(URL.createObjectURL(blob), "_blank", "noopener"));
}

// -- index information ------------------------------------------------------------------
async function loadStats() {
  try {
    const stats = await (await api("/stats")).json();
    const c = stats.counts;
    $("index-info").textContent =
      `${c.articles} articles · ${c.passages} passages · ${c.images} images`;
    if (c.articles === 0 && c.images === 0) {
      const hint = el("div", { class: "empty" },
        el("strong", { text: "This index is empty." }),
        " Add articles and images with ",
        el("code", { text: "mmretrieve index SOURCE --index PATH" }),
        ", then reload this page.");
      $("results").replaceChildren(hint);
    }
    showWarnings(stats.warnings);
  } catch (err) {
    $("index-info").textContent = "";
    showError(err.message);
  }
}

// -- query image: picker, drag-and-drop, paste -------------------------------------------
function setImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    showError(`"${file.name || "That file"}" is not an image.`);
    return;
  }
  showError("");
  state.image = file;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(file);
  $("preview-img").src = state.imageUrl;
  $("preview-name").textContent = `${file.name || "pasted image"} (${Math.round(file.size / 1024)} KB)`;
  $("image-preview").hidden = false;
}

function clearImage() {
  state.image = null;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = null;
  $("image-input").value = "";
  $("image-preview").hidden = true;
  $("drop-zone").focus();
}

function wireImageInputs() {
  const zone = $("drop-zone");
  const input = $("image-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
    if (e.key === "Escape" && state.image) { e.preventDefault(); clearImage(); }
  });
  input.addEventListener("change", () => setImage(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    setImage(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const items = (e.clipboardData && e.clipboardData.items) || [];
    for (const item of items) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        e.preventDefault();
        setImage(item.getAsFile());
        return;
      }
    }
  });
  $("remove-image").addEventListener("click", clearImage);
}

// -- highlighting -------------------------------------------------------------------------
function queryTerms(text) {
  const words = (text || "").toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  return [...new Set(words.filter((w) => w.length > 1 && !STOP.has(w)))];
}

function termPattern(terms) {
  if (!terms.length) return null;
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // Words that start with a term: "bat" marks "Batman", "paint" marks "painter".
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${escaped.join("|")})[\\p{L}\\p{N}]*`, "giu");
}

function snippet(text, pattern) {
  const flat = (text || "").replace(/\s+/g, " ").trim();
  if (flat.length <= SNIPPET) return flat;
  let start = 0;
  if (pattern) {
    pattern.lastIndex = 0;
    const m = pattern.exec(flat);
    if (m) start = Math.max(0, m.index - 80);
  }
  const end = Math.min(flat.length, start + SNIPPET);
  return (start > 0 ? "…" : "") + flat.slice(start, end).trim() + (end < flat.length ? "…" : "");
}

function highlighted(text, pattern) {
  const frag = document.createDocumentFragment();
  if (!pattern) { frag.append(text); return frag; }
  let last = 0;
  pattern.lastIndex = 0;
  for (const m of text.matchAll(pattern)) {
    frag.append(text.slice(last, m.index), el("mark", { text: m[0] }));
    last = m.index + m[0].length;
  }
  frag.append(text.slice(last));
  return frag;
}

// -- results -----------------------------------------------------------------------------
const fmt = (x) => (typeof x === "number" ? x.toFixed(4) : String(x));

// "Why this result": what each route added to the score, largest first; raw scores on hover.
function whyLine(item) {
  const parts = Object.entries(item.contributions || {})
    .filter(([, v]) => v > 0.0005)
    .sort((a, b) => b[1] - a[1])
    .map(([name, v]) => `${name} +${v.toFixed(2)}`);
  const raw = Object.entries(item.routes || {}).map(([name, s]) => `${name}: raw ${fmt(s)}`);
  return el("span", { class: "routes why", title: raw.join("\n") || null,
    text: "why: " + (parts.length ? parts.join(" · ") : "no route added to it") });
}

function measure(item) {
  const sure = typeof item.confidence === "number" ? ` · confidence ${item.confidence.toFixed(2)}` : "";
  return `score ${fmt(item.score)}${sure}`;
}

function passageItem(hit, pattern, showSection = true) {
  return el("li", { class: "passage" },
    hit.section && showSection ? el("span", { class: "section-name", text: hit.section }) : null,
    highlighted(snippet(hit.text, pattern), pattern),
    whyLine(hit));
}

// "in N articles" for a picture that several articles use (identical files), else "".
function sharedBy(hit) {
  const n = (hit.article_ids || []).length;
  return n > 1 ? `in ${n} articles` : "";
}

function thumbItem(hit, title) {
  const alt = hit.caption || `Image from ${title || "an unlinked source"}`;
  const img = el("img", { alt, loading: "lazy", width: "136", height: "136" });
  loadImage(img, hit.thumbnail_url);
  const link = el("a", { href: hit.url, target: "_blank", rel: "noopener noreferrer",
    title: "Open the original image" }, img);
  link.addEventListener("click", (e) => openOriginal(e, hit.url));
  return el("li", { class: "thumb" },
    el("figure", {}, link, el("figcaption", { text: [measure(hit), hit.caption, sharedBy(hit)].filter(Boolean).join(" · ") }),
      whyLine(hit)));
}

// One section of an article: its heading, then its passages and images together.
function sectionBlock(section, pattern, title) {
  const block = el("section", { class: "article-section", "data-section": section.title || "" },
    el("h3", {}, el("span", { text: section.title || "Lead" }), " ",
      el("span", { class: "score", text: `score ${section.score.toFixed(3)}` })));
  if (section.passages.length) {
    block.append(el("ul", { class: "passages" },
      ...section.passages.map((h) => passageItem(h, pattern, false))));
  }
  if (section.images.length) {
    block.append(el("ul", { class: "thumbs" }, ...section.images.map((h) => thumbItem(h, title))));
  }
  return block;
}

function articleCard(group, pattern, rank, bySection) {
  const a = group.article;
  const heading = a.url
    ? el("a", { href: a.url, target: "_blank", rel: "noopener noreferrer", text: a.title })
    : a.title;
  const card = el("article", { class: "card", "data-article-id": a.id, "aria-label": `${rank}. ${a.title}` },
    el("div", { class: "card-head" },
      el("h2", {}, `${rank}. `, heading),
      el("span", { class: "score", text: measure(group) })),
    el("p", { class: "article-why" }, whyLine(group)));
  if (bySection && group.sections && group.sections.length) {
    card.append(...group.sections.map((s) => sectionBlock(s, pattern, a.title)));
    return card;
  }
  if (group.passages.length) {
    card.append(el("ul", { class: "passages", "aria-label": "Best passages" },
      ...group.passages.map((h) => passageItem(h, pattern))));
  }
  if (group.images.length) {
    card.append(el("ul", { class: "thumbs", "aria-label": "Best images" },
      ...group.images.map((h) => thumbItem(h, a.title))));
  }
  return card;
}

function flatList(result, pattern) {
  const titles = Object.fromEntries(result.articles.map((g) => [g.article.id, g.article.title]));
  const list = el("ol", { class: "flat", "aria-label": "Passages and images, best first" });
  result.hits.forEach((hit, n) => {
    const title = titles[hit.article_id] || hit.article_id || "(no article)";
    const body = el("div", {},
      el("span", { class: "kind", text: hit.kind }),
      el("strong", { text: title }), " ",
      el("span", { class: "score", text: measure(hit) }));
    if (hit.kind === "passage") {
      body.append(el("div", {}, highlighted(snippet(hit.text, pattern), pattern)));
    } else if (hit.caption || sharedBy(hit)) {
      body.append(el("div", { class: "shared", text: [hit.caption, sharedBy(hit)].filter(Boolean).join(" · ") }));
    }
    body.append(whyLine(hit));
    let thumb = null;
    if (hit.kind === "image") {
      thumb = el("img", { alt: hit.caption || `Image from ${title}`, loading: "lazy" });
      loadImage(thumb, hit.thumbnail_url);
    }
    list.append(el("li", { class: `hit hit-${hit.kind}` }, el("span", { class: "rank", text: String(n + 1) }), thumb, body));
  });
  return list;
}

function render() {
  const result = state.result;
  const box = $("results");
  if (!result) return;
  const pattern = termPattern(state.terms);
  const view = document.querySelector('input[name="view"]:checked').value;
  if (!result.articles.length && !result.hits.length) {
    const strict = typeof result.query?.min_score === "number";
    box.replaceChildren(el("div", { class: "empty", text: strict
      ? `Nothing relevant: no result reached confidence ${result.query.min_score}. Lower "Only confident results" to see the closest matches.`
      : "No results. Try other words or another image." }));
    return;
  }
  if (view === "flat") box.replaceChildren(flatList(result, pattern));
  else {
    const bySection = view === "sections";
    box.replaceChildren(...result.articles.map((g, i) => articleCard(g, pattern, i + 1, bySection)));
  }
}

async function search(event) {
  event.preventDefault();
  const text = $("q").value.trim();
  if (!text && !state.image) {
    showError("Type some words, add an image, or both.");
    $("q").focus();
    return;
  }
  showError("");
  const form = new FormData();
  if (text) form.append("text", text);
  if (state.image) form.append("image", state.image, state.image.name || "pasted.png");
  form.append("k", $("k").value);
  if ($("min-score").value) form.append("min_score", $("min-score").value);
  // "license=CC0; lang!=de": each condition a form field of its own.
  for (const part of $("filters").value.split(";")) {
    if (part.trim()) form.append("filter", part.trim());
  }
  const button = $("submit");
  button.disabled = true;
  $("results").setAttribute("aria-busy", "true");
  setStatus("Searching…");
  try {
    const result = await (await api("/search", { method: "POST", body: form })).json();
    state.result = result;
    state.terms = queryTerms(text);
    render();
    showWarnings(result.warnings);
    const ms = result.timings_ms && result.timings_ms.total;
    setStatus(`${result.articles.length} articles, ${result.hits.length} items` +
      (ms !== undefined ? ` in ${Math.round(ms)} ms` : "") + ".");
  } catch (err) {
    setStatus("");
    showError(err.message || String(err));
  } finally {
    button.disabled = false;
    $("results").removeAttribute("aria-busy");
  }
}

function init() {
  state.apiKey = sessionStorage.getItem("mmretrieve-api-key");
  $("search-form").addEventListener("submit", search);
  for (const radio of document.querySelectorAll('input[name="view"]')) {
    radio.addEventListener("change", render);
  }
  $("save-key").addEventListener("click", () => {
    state.apiKey = $("api-key").value || null;
    if (state.apiKey) sessionStorage.setItem("mmretrieve-api-key", state.apiKey);
    $("api-key-box").hidden = true;
    showError("");
    loadStats();
    $("q").focus();
  });
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); }
  });
  wireImageInputs();
  loadStats();
}

document.addEventListener("DOMContentLoaded", init);
