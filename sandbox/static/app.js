// The sandbox's chat page. Everything a message shows is built as DOM nodes from the
// message's plain text and Telegram's entities: no text is ever parsed as HTML here.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  persona: null,
  personas: [],
  messages: new Map(),
  seq: 0,
  source: null,
  clockOffsetMs: 0,
  keyboard: null,
};
const TZ = "Asia/Ho_Chi_Minh";
const clockFormat = new Intl.DateTimeFormat("vi-VN", {
  timeZone: TZ, day: "2-digit", month: "2-digit", year: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

async function api(path, options = {}) {
  const init = { ...options };
  if (init.body && !(init.body instanceof FormData)) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(init.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error("Không kết nối được với hộp thử. Nó còn chạy không?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `Lỗi máy chủ (${response.status}).`);
  return body;
}

let toastTimer = null;
function toast(text, kind = "") {
  const box = $("toast");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, kind === "alert" ? 6000 : 3000);
}
$("toast").addEventListener("click", () => { $("toast").hidden = true; });

async function act(button, work) {
  if (button) button.disabled = true;
  try { return await work(); } catch (err) { toast(err.message, "error"); return null; }
  finally { if (button) button.disabled = false; }
}

// ------------------------------------------------------------------ Telegram formatting

const SAFE_URL = /^(https?:|tg:|mailto:)/i;

function entityNode(entity) {
  switch (entity.type) {
    case "bold": return document.createElement("b");
    case "italic": return document.createElement("i");
    case "underline": return document.createElement("u");
    case "strikethrough": return document.createElement("s");
    case "code": return document.createElement("code");
    case "pre": return document.createElement("pre");
    case "blockquote":
    case "expandable_blockquote": return document.createElement("blockquote");
    case "spoiler": {
      const span = document.createElement("span");
      span.className = "spoiler";
      span.title = "Nhấn để xem";
      span.addEventListener("click", () => span.classList.add("shown"));
      return span;
    }
    case "text_link": {
      if (!SAFE_URL.test(entity.url || "")) return document.createElement("span");
      const a = document.createElement("a");
      a.href = entity.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      return a;
    }
    default: return document.createElement("span");
  }
}

// Offsets and lengths are in UTF-16 code units: so are JavaScript strings.
function buildEntities(parent, text, entities, start, end) {
  let pos = start;
  let i = 0;
  while (i < entities.length) {
    const entity = entities[i];
    const stop = Math.min(entity.offset + entity.length, end);
    const inner = [];
    let j = i + 1;
    while (j < entities.length && entities[j].offset < stop) {
      const e = entities[j];
      inner.push({ ...e, length: Math.min(e.offset + e.length, stop) - e.offset });
      j += 1;
    }
    if (entity.offset > pos) parent.append(text.slice(pos, entity.offset));
    const node = entityNode(entity);
    buildEntities(node, text, inner, Math.max(entity.offset, pos), stop);
    if (entity.type === "text_link" && node.tagName === "A" && !node.textContent) {
      node.textContent = entity.url;
    }
    parent.append(node);
    pos = Math.max(pos, stop);
    i = j;
  }
  if (pos < end) parent.append(text.slice(pos, end));
}

function renderText(text, entities) {
  const div = document.createElement("div");
  div.className = "text";
  const sorted = (entities || [])
    .filter((e) => e.length > 0)
    .sort((a, b) => a.offset - b.offset || b.length - a.length);
  buildEntities(div, text, sorted, 0, text.length);
  return div;
}

// ------------------------------------------------------------------ messages

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1).replace(".", ",")} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1).replace(".", ",")} MB`;
}

function renderMessage(m) {
  const el = document.createElement("div");
  el.className = `msg ${m.from_bot ? "bot" : "user"}`;
  el.dataset.id = String(m.id);
  el.dataset.seq = String(m.seq);
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (m.document) {
    const link = document.createElement("a");
    link.className = "doc";
    link.href = `/api/personas/${state.persona}/files/${encodeURIComponent(m.document.file_id)}`;
    link.download = m.document.name;
    const icon = document.createElement("span");
    icon.className = "icon";
    icon.textContent = "📄";
    const label = document.createElement("span");
    label.textContent = m.document.name;
    const size = document.createElement("small");
    size.textContent = `${formatSize(m.document.size)} · ${m.from_bot ? "Tải về" : "Đã gửi"}`;
    label.append(size);
    link.append(icon, label);
    bubble.append(link);
  }
  if (m.contact) {
    const p = document.createElement("div");
    p.className = "text";
    p.textContent = `📱 Đã chia sẻ số điện thoại ${m.contact.phone}`;
    bubble.append(p);
  }
  if (m.text) bubble.append(renderText(m.text, m.entities));
  if (m.edited) {
    const mark = document.createElement("i");
    mark.className = "edited";
    mark.textContent = "đã sửa";
    bubble.append(mark);
  }
  el.append(bubble);
  if (m.buttons && m.buttons.length) {
    const kb = document.createElement("div");
    kb.className = "kb";
    for (const row of m.buttons) {
      const r = document.createElement("div");
      r.className = "row";
      for (const b of row) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "ib";
        button.textContent = b.text;
        if (b.url && SAFE_URL.test(b.url)) {
          button.addEventListener("click", () => window.open(b.url, "_blank", "noopener"));
        } else if (b.data) {
          button.addEventListener("click", () => press(m.id, b.data, button));
        } else {
          button.disabled = true;
        }
        r.append(button);
      }
      kb.append(r);
    }
    el.append(kb);
  }
  return el;
}

function nearBottom() {
  const chat = $("chat");
  return chat.scrollHeight - chat.scrollTop - chat.clientHeight < 120;
}

function scrollDown() {
  const chat = $("chat");
  chat.scrollTop = chat.scrollHeight;
}

function upsert(m) {
  const chat = $("chat");
  const old = chat.querySelector(`.msg[data-id="${m.id}"]`);
  if (m.deleted) {
    state.messages.delete(m.id);
    if (old) old.remove();
    return false;
  }
  state.messages.set(m.id, m);
  const el = renderMessage(m);
  if (old) { old.replaceWith(el); return false; }
  const later = [...chat.querySelectorAll(".msg")].find((n) => Number(n.dataset.id) > m.id);
  chat.insertBefore(el, later || null);
  return true;
}

function renderKeyboard(rows) {
  const box = $("reply-kb");
  box.replaceChildren();
  state.keyboard = rows;
  box.hidden = !rows;
  if (!rows) return;
  for (const row of rows) {
    const r = document.createElement("div");
    r.className = "row";
    for (const b of row) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = b.text;
      button.addEventListener("click", () => act(button, () => (b.contact
        ? api(`/api/personas/${state.persona}/contact`, { method: "POST", body: {} })
        : sendText(b.text))));
      r.append(button);
    }
    box.append(r);
  }
}

function renderMenu(commands) {
  const menu = $("menu");
  menu.replaceChildren();
  for (const c of commands || []) {
    const button = document.createElement("button");
    button.type = "button";
    const name = document.createElement("b");
    name.textContent = `/${c.command}`;
    button.append(name, c.description);
    button.addEventListener("click", () => {
      menu.hidden = true;
      act(button, () => sendText(`/${c.command}`));
    });
    menu.append(button);
  }
}

function apply(update) {
  const follow = nearBottom();
  let added = false;
  for (const m of update.messages) added = upsert(m) || added;
  state.seq = Math.max(state.seq, update.seq);
  renderKeyboard(update.keyboard);
  renderMenu(update.commands);
  $("empty").hidden = state.messages.size > 0;
  if (added || follow) scrollDown();
}

// ------------------------------------------------------------------ actions

function sendText(text) {
  return api(`/api/personas/${state.persona}/text`, { method: "POST", body: { text } });
}

async function press(messageId, data, button) {
  const answer = await act(button, () => api(`/api/personas/${state.persona}/press`, {
    method: "POST", body: { message_id: messageId, data },
  }));
  if (answer && answer.text) toast(answer.text, answer.alert ? "alert" : "");
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !state.persona) return;
  act($("send"), async () => { await sendText(text); input.value = ""; });
});

$("start").addEventListener("click", () => act($("start"), () => sendText("/start")));
$("menu-open").addEventListener("click", () => { $("menu").hidden = !$("menu").hidden; });

$("file").addEventListener("change", () => {
  const input = $("file");
  const file = input.files && input.files[0];
  if (!file || !state.persona) return;
  const form = new FormData();
  form.append("file", file, file.name);
  const caption = $("text").value.trim();
  if (caption) form.append("caption", caption);
  act(null, async () => {
    await api(`/api/personas/${state.persona}/document`, { method: "POST", body: form });
    $("text").value = "";
    toast(`Đã gửi tệp ${file.name}`);
  }).finally(() => { input.value = ""; });
});

// ------------------------------------------------------------------ personas

function personaLabel(p) {
  const role = p.role === "focal" ? `${p.role_name} (${p.unit_name})` : p.role_name;
  return `${p.name} — ${role}${p.channel === "zalo" ? " · Zalo" : ""}`;
}

// A Zalo chat is plain text: no command menu, no files, no reply keyboard; the person
// types letters, numbers and the phone number.
function showChannel(persona) {
  const zalo = Boolean(persona && persona.channel === "zalo");
  document.body.classList.toggle("zalo", zalo);
  document.body.dataset.channel = zalo ? "zalo" : "telegram";
  $("menu-open").hidden = zalo;
  $("file").disabled = zalo;
  $("file").parentElement.hidden = zalo;
  $("zalo-hint").hidden = !zalo;
  $("zalo-phone").textContent = zalo ? persona.phone : "";
  $("text").maxLength = zalo ? 2000 : 4096;
  $("text").placeholder = zalo ? "Nhập tin nhắn Zalo…" : "Nhập tin nhắn hoặc lệnh…";
}

function renderPersonas() {
  const select = $("persona");
  select.replaceChildren();
  for (const p of state.personas) {
    const option = document.createElement("option");
    option.value = String(p.id);
    option.textContent = personaLabel(p);
    select.append(option);
  }
  if (state.persona) select.value = String(state.persona);
}

async function selectPersona(id) {
  if (state.source) { state.source.close(); state.source = null; }
  state.persona = id;
  state.messages.clear();
  state.seq = 0;
  history.replaceState(null, "", `#vai=${id}`);
  $("persona").value = String(id);
  $("chat").querySelectorAll(".msg").forEach((n) => n.remove());
  $("menu").hidden = true;
  showChannel(state.personas.find((p) => p.id === id));
  const chat = await act(null, () => api(`/api/personas/${id}/chat`));
  if (!chat || state.persona !== id) return;
  apply(chat);
  scrollDown();
  const source = new EventSource(`/api/personas/${id}/events?since=${state.seq}`);
  source.onmessage = (event) => { if (state.persona === id) apply(JSON.parse(event.data)); };
  state.source = source;
}

$("persona").addEventListener("change", () => selectPersona(Number($("persona").value)));
// A page left for another one may be kept in the browser's back/forward cache with its
// event stream still open; a browser opens only 6 connections to the sandbox, so a few
// such pages would hold up every request of the page in use. Close it; open it again on
// coming back.
window.addEventListener("pagehide", () => {
  if (state.source) { state.source.close(); state.source = null; }
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted && state.persona) selectPersona(state.persona);
});
window.addEventListener("hashchange", () => {
  const wanted = Number((location.hash.match(/vai=(\d+)/) || [])[1]);
  if (wanted && wanted !== state.persona && state.personas.some((p) => p.id === wanted)) {
    selectPersona(wanted);
  }
});

$("new-persona-open").addEventListener("click", () => {
  $("new-persona").hidden = false;
  $("new-name").focus();
});
$("new-persona-cancel").addEventListener("click", () => { $("new-persona").hidden = true; });
$("new-role").addEventListener("change", () => {
  $("new-unit-label").hidden = $("new-role").value !== "focal";
});
$("new-persona").addEventListener("submit", (event) => {
  event.preventDefault();
  act($("new-persona-create"), async () => {
    const persona = await api("/api/personas", {
      method: "POST",
      body: {
        name: $("new-name").value,
        role: $("new-role").value,
        unit_code: $("new-unit").value,
        channel: $("new-channel").value,
      },
    });
    state.personas.push(persona);
    renderPersonas();
    $("new-persona").hidden = true;
    $("new-name").value = "";
    await selectPersona(persona.id);
    toast(`Đã tạo vai ${personaLabel(persona)}`);
  });
});

// ------------------------------------------------------------------ the clock

function showClock(clock) {
  state.clockOffsetMs = Date.parse(clock.now) - Date.now();
  tick();
}

function tick() {
  $("clock-now").textContent = clockFormat.format(new Date(Date.now() + state.clockOffsetMs));
}

async function moveClock(body, button) {
  const clock = await act(button, () => api("/api/clock", { method: "POST", body }));
  if (clock) {
    showClock(clock);
    toast(`Đồng hồ diễn tập: ${clock.local}`);
  }
}

for (const button of document.querySelectorAll("[data-minutes]")) {
  button.addEventListener("click", () => moveClock({ minutes: Number(button.dataset.minutes) }, button));
}
$("clock-go").addEventListener("click", () => {
  const value = $("clock-to").value;
  if (!value) { toast("Hãy chọn ngày giờ cần đến.", "error"); return; }
  moveClock({ to: value }, $("clock-go"));
});

// ------------------------------------------------------------------ start

async function load() {
  const s = await act(null, () => api("/api/state"));
  if (!s) return;
  state.personas = s.personas;
  showClock(s.clock);
  $("schedule").textContent = `Vòng 1: từ ${s.schedule.round1_opens} đến ${s.schedule.round1_closes}.`;
  const units = $("new-unit");
  units.replaceChildren();
  for (const u of s.units) {
    const option = document.createElement("option");
    option.value = u.code;
    option.textContent = u.name;
    units.append(option);
  }
  const wanted = Number((location.hash.match(/vai=(\d+)/) || [])[1]);
  const chosen = state.personas.find((p) => p.id === wanted) || state.personas[0];
  renderPersonas();
  if (chosen) await selectPersona(chosen.id);
  document.body.dataset.ready = "1";
}

setInterval(tick, 1000);
setInterval(() => api("/api/state").then((s) => showClock(s.clock)).catch(() => {}), 30000);
load();
