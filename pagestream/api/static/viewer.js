// pagestream viewer: plain JS over the public API (no build step).
'use strict';
const KEY = sessionStorage.getItem('pagestream_api_key');
const $ = (id) => document.getElementById(id);
const state = { doc: null, pages: [], page: null, terms: [], imageUrl: null };

function headers() { return KEY ? { 'X-API-Key': KEY } : {}; }

async function api(path, as = 'json') {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(`${r.status}: ${detail}`);
  }
  return as === 'blob' ? r.blob() : as === 'text' ? r.text() : r.json();
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
}

// --- upload with progress ----------------------------------------------------------------------
$('upload-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const file = $('upload-file').files[0];
  if (!file) return;
  const form = new FormData();
  form.append('file', file);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/v1/documents');
  for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
  const bar = $('upload-progress');
  bar.hidden = false; bar.value = 0;
  $('upload-status').textContent = `uploading ${file.name} …`;
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
  xhr.onload = () => {
    bar.value = 100;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status >= 400) {
      $('upload-status').textContent = `rejected: ${body.detail || xhr.status}`;
      return;
    }
    $('upload-status').textContent = `${file.name}: ${body.status}${body.duplicate ? ' (already uploaded)' : ''}`;
    refreshDocuments().then(() => openDocument(body.id));
  };
  xhr.onerror = () => { $('upload-status').textContent = 'upload failed: network error'; };
  xhr.send(form);
});

// --- document list, live -----------------------------------------------------------------------
function statusBadge(d) {
  const pct = d.page_count ? ` ${d.pages_done + d.pages_failed}/${d.page_count}` : '';
  return el('span', { className: `status ${d.status}`, textContent: d.status + pct });
}

async function refreshDocuments() {
  let body;
  try { body = await api('/v1/documents?limit=50'); } catch (e) { return; }
  const list = $('documents');
  list.replaceChildren(...body.items.map((d) => {
    const li = el('li', { className: d.id === (state.doc && state.doc.id) ? 'selected' : '' },
      el('span', { textContent: d.filename || d.id }), statusBadge(d));
    li.dataset.id = d.id;
    li.dataset.status = d.status;
    li.addEventListener('click', () => openDocument(d.id));
    return li;
  }));
  if (state.doc) {
    const fresh = body.items.find((d) => d.id === state.doc.id);
    if (fresh && fresh.status !== state.doc.status) openDocument(fresh.id, state.page && state.page.page_number);
  }
}

// --- one document ------------------------------------------------------------------------------
async function openDocument(id, pageNumber = 1) {
  const doc = await api(`/v1/documents/${id}`);
  const pages = await api(`/v1/documents/${id}/pages`);
  state.doc = doc; state.pages = pages.pages;
  $('document').hidden = false;
  $('doc-title').textContent = doc.filename || doc.id;
  $('doc-meta').replaceChildren(statusBadge(doc), ` ${doc.page_count || 0} pages` + (doc.error ? ` — ${doc.error}` : ''));
  const finished = !['received', 'processing'].includes(doc.status);
  $('doc-links').replaceChildren(...(finished ? [
    downloadLink('Searchable PDF', `/v1/documents/${id}/pdf?download=true`, 'searchable.pdf'),
    downloadLink('hOCR', `/v1/documents/${id}/export?format=hocr`, 'hocr.html'),
    downloadLink('ALTO', `/v1/documents/${id}/export?format=alto`, 'alto.xml'),
  ] : []));
  for (const li of $('documents').children) li.classList.toggle('selected', li.dataset.id === id);
  $('pages').replaceChildren(...state.pages.map((p) => {
    const b = el('button', { textContent: `${p.page_number}`, title: p.status, disabled: p.status !== 'completed' });
    b.dataset.page = p.page_number;
    b.addEventListener('click', () => showPage(p.page_number));
    return b;
  }));
  showTitleBlock(doc);
  const first = state.pages.find((p) => p.page_number === pageNumber && p.status === 'completed')
    || state.pages.find((p) => p.status === 'completed');
  if (first) await showPage(first.page_number);
  else clearPage();
}

function downloadLink(label, path, suffix) {
  const a = el('a', { href: '#', textContent: label });
  a.style.marginRight = '1rem';
  a.addEventListener('click', async (ev) => {
    ev.preventDefault();
    const blob = await api(path, 'blob');
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: `${(state.doc.filename || state.doc.id).replace(/\.[^.]+$/, '')}.${suffix}` });
    document.body.append(link); link.click(); link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return a;
}

function showTitleBlock(doc) {
  const dl = $('title-block');
  const rows = [];
  for (const tb of doc.title_blocks || []) {
    rows.push(el('dt', { textContent: `Page ${tb.page_number}` }), el('dd', { textContent: '' }));
    for (const [k, label] of [['sheet_number', 'Sheet number'], ['sheet_title', 'Sheet title'], ['scale', 'Scale']]) {
      if (tb[k]) rows.push(el('dt', { textContent: label }), el('dd', { textContent: tb[k], className: `tb-${k}` }));
    }
  }
  dl.replaceChildren(...rows);
}

function clearPage() {
  $('page-image').removeAttribute('src');
  $('boxes').replaceChildren();
  $('page-text').textContent = '';
}

function shade(confidence) {
  const hue = Math.max(0, Math.min(120, confidence * 1.2)); // red (0) … green (100)
  return `hsla(${hue}, 85%, 45%, 0.30)`;
}

function matches(text) {
  const t = text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
  return t && state.terms.some((term) => t === term || (term.length > 3 && t.startsWith(term)));
}

async function showPage(number) {
  const page = state.pages.find((p) => p.page_number === number);
  if (!page) return;
  state.page = page;
  for (const b of $('pages').children) b.classList.toggle('current', Number(b.dataset.page) === number);
  const [ocr, image] = await Promise.all([api(`/v1/pages/${page.id}/ocr`), api(`/v1/pages/${page.id}/image`, 'blob')]);
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(image);
  const img = $('page-image');
  const loaded = new Promise((resolve) => { img.onload = resolve; });
  img.src = state.imageUrl;
  await loaded;
  const boxes = [];
  for (const block of ocr.blocks) for (const line of block.lines) for (const w of line.words) {
    const b = w.box;
    const div = el('div', { className: 'word' + (matches(w.text) ? ' hit' : '') });
    Object.assign(div.style, {
      left: `${b.nx0 * 100}%`, top: `${b.ny0 * 100}%`,
      width: `${(b.nx1 - b.nx0) * 100}%`, height: `${(b.ny1 - b.ny0) * 100}%`,
      background: shade(w.confidence),
    });
    div.dataset.word = w.text;
    div.dataset.confidence = w.confidence.toFixed(1);
    boxes.push(div);
  }
  $('boxes').replaceChildren(...boxes);
  // the layout's lines, in reading order (the stored layout keeps the page text apart)
  const text = ocr.text || ocr.blocks.map((b) => b.lines.map((l) => l.text).join('\n')).join('\n\n');
  $('page-text').replaceChildren(...highlightText(text));
  $('stage').dataset.page = number;
  const hit = $('boxes').querySelector('.hit');
  if (hit) hit.scrollIntoView({ block: 'center' });
}

function highlightText(text) {
  if (!state.terms.length) return [text];
  const out = [];
  for (const part of text.split(/(\s+)/)) out.push(matches(part) ? el('mark', { textContent: part }) : part);
  return out;
}

// hover: the word and its confidence
$('boxes').addEventListener('mousemove', (ev) => {
  const w = ev.target.closest('.word');
  const tip = $('tip');
  if (!w) { tip.hidden = true; return; }
  tip.textContent = `${w.dataset.word} — ${w.dataset.confidence}%`;
  const stage = $('stage').getBoundingClientRect();
  tip.style.left = `${ev.clientX - stage.left + 12}px`;
  tip.style.top = `${ev.clientY - stage.top + 12}px`;
  tip.hidden = false;
});
$('boxes').addEventListener('mouseleave', () => { $('tip').hidden = true; });

// --- search ------------------------------------------------------------------------------------
$('search-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('search-q').value.trim();
  if (!q) return;
  state.terms = q.toLowerCase().split(/\s+/).map((t) => t.replace(/[^\p{L}\p{N}]+/gu, '')).filter((t) => t && t !== 'or');
  const body = await api(`/v1/search?q=${encodeURIComponent(q)}`);
  $('search-results').hidden = false;
  const items = [];
  for (const hit of body.items) for (const p of hit.pages) {
    const li = el('li', {}, el('strong', { textContent: `${hit.filename || hit.document_id} — page ${p.page_number}` }));
    const snippet = el('div');
    snippet.innerHTML = p.snippet; // server-escaped HTML: page text escaped, hits in <mark>
    li.append(snippet);
    li.dataset.document = hit.document_id;
    li.dataset.page = p.page_number;
    li.addEventListener('click', () => openDocument(hit.document_id, p.page_number));
    items.push(li);
  }
  $('hits').replaceChildren(...(items.length ? items : [el('li', { textContent: 'no matches' })]));
  if (state.page && state.doc) showPage(state.page.page_number);
});

refreshDocuments();
setInterval(refreshDocuments, 2000);
