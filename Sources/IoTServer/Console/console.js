// The iotd web console: a page per hash route, all data through the management API (/api/v1), live points
// through its WebSocket feed. No build step, no dependency but Chart.js (vendor/, from Debian's libjs-chart.js).
'use strict';

const state = {
  auth: JSON.parse(sessionStorage.getItem('iotd.console') || 'null'), // {token, refresh, kind}
  me: null,
  socket: null,
  chart: null,
  live: 0, // live points drawn since the device page opened (the browser test reads it)
};
window.iotdConsole = state;

// ---------------------------------------------------------------- API

class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || ('HTTP ' + status));
    this.status = status;
    this.code = body && body.error;
  }
}

async function api(method, path, body) {
  return (await apiCall(method, path, body)).json;
}

/** The JSON body and the headers of a call (a paged listing's X-Total-Count). */
async function apiCall(method, path, body, retried) {
  const headers = { 'Accept': 'application/json' };
  if (state.auth) headers['Authorization'] = 'Bearer ' + state.auth.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = { message: text }; }
  if (response.status === 401 && state.auth && state.auth.refresh && !retried) {
    if (await refresh()) return apiCall(method, path, body, true);
  }
  if (response.status === 401) {
    if (!location.hash.startsWith('#/signin')) signOut(false);
    throw new APIError(401, json);
  }
  if (!response.ok) throw new APIError(response.status, json);
  return { json, headers: response.headers };
}

async function refresh() {
  const response = await fetch('/api/v1/auth/refresh', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refreshToken: state.auth.refresh }),
  });
  if (!response.ok) return false;
  const tokens = await response.json();
  saveAuth({ kind: 'user', token: tokens.accessToken, refresh: tokens.refreshToken });
  return true;
}

function saveAuth(auth) {
  state.auth = auth;
  if (auth) sessionStorage.setItem('iotd.console', JSON.stringify(auth));
  else sessionStorage.removeItem('iotd.console');
}

function signOut(callServer) {
  if (callServer && state.auth && state.auth.refresh) {
    fetch('/api/v1/auth/logout', {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + state.auth.token },
      body: JSON.stringify({ refreshToken: state.auth.refresh }),
    }).catch(() => {});
  }
  saveAuth(null);
  state.me = null;
  location.hash = '#/signin';
}

// ---------------------------------------------------------------- DOM helpers

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const view = document.getElementById('view');
  view.replaceChildren(...nodes);
}

function errorBox(error) {
  return el('div', { class: 'error', role: 'alert' }, error.message || String(error));
}

function formatTime(ms) {
  if (ms === undefined || ms === null) return '';
  return new Date(ms).toLocaleString();
}

function formatValue(value) {
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(3).replace(/\.?0+$/, '');
  return String(value);
}

function table(columns, rows, empty) {
  if (!rows.length) return el('p', { class: 'muted' }, empty || 'Nothing here yet.');
  return el('table', {},
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', {}, c.title)))),
    el('tbody', {}, rows.map((row) => el('tr', {}, columns.map((c) => el('td', {}, c.cell(row)))))));
}

function setNav(tenant, active) {
  const nav = document.getElementById('nav');
  if (!tenant) { nav.replaceChildren(); return; }
  const links = [['overview', 'Overview', '#/t/' + tenant], ['devices', 'Devices', '#/t/' + tenant + '/devices'],
    ['alarms', 'Alarms', '#/t/' + tenant + '/alarms'], ['rules', 'Rules', '#/t/' + tenant + '/rules'],
    ['statistics', 'Statistics', '#/t/' + tenant + '/statistics'], ['reports', 'Reports', '#/t/' + tenant + '/reports'],
    ['outbox', 'Notifications', '#/t/' + tenant + '/outbox'], ['transports', 'Transports', '#/t/' + tenant + '/transports'],
    ['screens', 'Screens', '#/t/' + tenant + '/screens']];
  nav.replaceChildren(...links.map(([key, title, href]) =>
    el('a', { href, class: key === active ? 'active' : null }, title)));
}

function closeLive() {
  if (state.socket) { state.socket.onclose = null; state.socket.close(); state.socket = null; }
  if (state.chart) { state.chart.destroy(); state.chart = null; }
  if (state.screenTimer) { clearInterval(state.screenTimer); state.screenTimer = null; }
  for (const chart of state.screenCharts || []) chart.destroy();
  state.screenCharts = [];
  document.body.classList.remove('screen-mode');
}

// ---------------------------------------------------------------- pages

function signInPage() {
  setNav(null);
  const error = el('div');
  const tenant = el('input', { id: 'tenant', name: 'tenant', autocomplete: 'organization', placeholder: 'empty for a platform user' });
  const username = el('input', { id: 'username', name: 'username', autocomplete: 'username', required: true });
  const password = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const key = el('input', { id: 'apikey', name: 'apikey', type: 'password', placeholder: 'or an API key / the admin key' });
  const form = el('form', {
    class: 'card signin', onsubmit: async (event) => {
      event.preventDefault();
      error.replaceChildren();
      try {
        if (key.value) {
          saveAuth({ kind: 'key', token: key.value });
          await api('GET', '/api/v1/tenants');
        } else {
          const body = { username: username.value, password: password.value };
          if (tenant.value) body.tenant = tenant.value;
          const tokens = await api('POST', '/api/v1/auth/login', body);
          saveAuth({ kind: 'user', token: tokens.accessToken, refresh: tokens.refreshToken });
        }
        state.me = null;
        location.hash = '#/';
      } catch (e) {
        saveAuth(null);
        error.replaceChildren(errorBox(e));
      }
    },
  },
  el('h1', {}, 'Sign in'),
  el('label', { for: 'tenant' }, 'Tenant'), tenant,
  el('label', { for: 'username' }, 'User'), username,
  el('label', { for: 'password' }, 'Password'), password,
  el('label', { for: 'apikey' }, 'API key'), key,
  el('button', { type: 'submit', id: 'signin' }, 'Sign in'), error);
  username.required = false;
  show(form);
}

async function tenantsPage() {
  setNav(null);
  const me = await whoAmI();
  if (me && me.tenant) { location.hash = '#/t/' + me.tenant; return; }
  const tenants = await api('GET', '/api/v1/tenants');
  if (tenants.length === 1) { location.hash = '#/t/' + tenants[0].id; return; }
  show(el('h1', {}, 'Tenants'), table([
    { title: 'Tenant', cell: (t) => el('a', { href: '#/t/' + t.id }, t.id) },
    { title: 'Name', cell: (t) => t.name || '' },
  ], tenants, 'No tenant yet: create one with POST /api/v1/tenants.'));
}

async function whoAmI() {
  if (state.me) return state.me;
  try { state.me = await api('GET', '/api/v1/auth/me'); } catch (e) {
    if (e.status === 401) throw e;
    state.me = {}; // no identity service: the admin key
  }
  const who = document.getElementById('who');
  who.textContent = state.me.username || (state.auth && state.auth.kind === 'key' ? 'API key' : '');
  document.getElementById('signout').hidden = false;
  return state.me;
}

/** Messages per second over the whole server, from two samples of /metrics a second apart. */
async function serverRate() {
  async function received() {
    const text = await (await fetch('/metrics')).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('iot_ingest_received_total')) sum += parseFloat(line.split(' ').pop()) || 0;
    }
    return sum;
  }
  const first = await received();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return (await received()) - first;
}

async function overviewPage(tenant) {
  setNav(tenant, 'overview');
  await whoAmI();
  const [overview, alarms] = await Promise.all([
    api('GET', `/api/v1/tenants/${tenant}/overview`),
    api('GET', `/api/v1/tenants/${tenant}/alarms?open=true&limit=1000`).catch(() => []),
  ]);
  const tile = (n, label, id, href) => el('div', { class: 'tile' }, el('div', { class: 'n', id }, n),
    href ? el('a', { class: 'l', href }, label) : el('div', { class: 'l' }, label));
  const devices = `#/t/${tenant}/devices`;
  show(el('h1', {}, 'Tenant ' + tenant),
    el('div', { class: 'tiles' },
      tile(overview.devices, 'devices', 'device-count', devices),
      tile(overview.online ?? '—', 'online', 'online-count', devices + '?status=online'),
      tile(overview.offline ?? '—', 'offline', 'offline-count', devices + '?status=offline'),
      tile(alarms.length, 'open alarms', 'open-alarms', `#/t/${tenant}/alarms`),
      tile(overview.pointsPerSecond === undefined ? '—' : overview.pointsPerSecond.toFixed(1), 'points/s (last 10 s)', 'rate'),
      tile('…', 'messages/s (whole server)', 'server-rate'),
      tile(overview.products, 'products')),
    el('h2', {}, 'Open alarms'), alarmTable(tenant, alarms.slice(0, 10), () => overviewPage(tenant)));
  const serverTile = document.getElementById('server-rate');
  serverRate().then((n) => { serverTile.textContent = n.toFixed(0); }).catch(() => { serverTile.textContent = '—'; });
}

function statusBadge(device) {
  if (device.online === undefined) return '';
  return el('span', { class: 'badge' + (device.online ? ' live' : '') }, device.online ? 'online' : 'offline');
}

async function devicesPage(tenant, query) {
  setNav(tenant, 'devices');
  await whoAmI();
  const pageSize = 50;
  const products = await api('GET', `/api/v1/tenants/${tenant}/products`);
  const search = el('input', { id: 'search', type: 'search', placeholder: 'Search uid, name, department, tag…', value: query.get('q') || '' });
  const product = el('select', { id: 'product' }, el('option', { value: '' }, 'All products'),
    products.map((p) => el('option', { value: p.id }, p.id)));
  product.value = query.get('product') || '';
  const status = el('select', { id: 'status' }, el('option', { value: '' }, 'Any status'),
    el('option', { value: 'online' }, 'Online'), el('option', { value: 'offline' }, 'Offline'));
  status.value = query.get('status') || '';
  const list = el('div');
  let offset = 0;
  let pending = 0;
  async function render() {
    const ticket = ++pending;
    const params = new URLSearchParams({ limit: pageSize, offset });
    if (search.value.trim()) params.set('q', search.value.trim());
    if (product.value) params.set('product', product.value);
    if (status.value) params.set('status', status.value);
    let answer;
    try { answer = await apiCall('GET', `/api/v1/tenants/${tenant}/devices?${params}`); } catch (e) {
      list.replaceChildren(errorBox(e)); return;
    }
    if (ticket !== pending) return;
    const devices = answer.json;
    const total = Number(answer.headers.get('X-Total-Count') || devices.length);
    const prev = el('button', { class: 'secondary', id: 'prev', disabled: offset === 0,
      onclick: () => { offset = Math.max(0, offset - pageSize); render(); } }, '‹ Previous');
    const next = el('button', { class: 'secondary', id: 'next', disabled: offset + pageSize >= total,
      onclick: () => { offset += pageSize; render(); } }, 'Next ›');
    list.replaceChildren(
      el('p', { class: 'muted', id: 'device-total' }, total === 0 ? 'No device matches.' :
        `${offset + 1}–${offset + devices.length} of ${total} devices`),
      table([
        { title: 'Device', cell: (d) => el('a', { href: `#/t/${tenant}/devices/${encodeURIComponent(d.uid)}` }, d.uid) },
        { title: 'Status', cell: statusBadge },
        { title: 'Last activity', cell: (d) => d.lastActivity ? formatTime(d.lastActivity) : 'never' },
        { title: 'Name', cell: (d) => d.name || '' },
        { title: 'Product', cell: (d) => d.product },
        { title: 'Tags', cell: (d) => Object.entries(d.tags || {}).map(([k, v]) => k + '=' + v).join(', ') },
      ], devices, 'No device matches.'),
      el('div', { class: 'toolbar' }, prev, next));
  }
  let timer;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { offset = 0; render(); }, 250); });
  product.addEventListener('change', () => { offset = 0; render(); });
  status.addEventListener('change', () => { offset = 0; render(); });
  show(el('h1', {}, 'Devices'), el('div', { class: 'toolbar' }, search, product, status), list);
  await render();
}

const ranges = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };

async function devicePage(tenant, uid) {
  setNav(tenant, 'devices');
  await whoAmI();
  const base = `/api/v1/tenants/${tenant}/devices/${encodeURIComponent(uid)}`;
  const [device, latest] = await Promise.all([api('GET', base), api('GET', base + '/latest')]);
  const signals = [...new Set([...(device.signals || []).map((s) => s.name), ...latest.map((p) => p.signal)])];
  const latestBody = el('tbody');
  const values = new Map(latest.map((p) => [p.signal, p]));
  function renderLatest() {
    latestBody.replaceChildren(...[...values.values()].sort((a, b) => a.signal.localeCompare(b.signal)).map((p) =>
      el('tr', {}, el('td', {}, p.signal), el('td', { class: 'value' }, formatValue(p.value)), el('td', {}, formatTime(p.time)))));
  }
  renderLatest();
  const signal = el('select', { id: 'signal' }, signals.map((s) => el('option', { value: s }, s)));
  const range = el('select', { id: 'range' }, Object.keys(ranges).map((r) => el('option', { value: r }, 'last ' + r)));
  const badge = el('span', { class: 'badge', id: 'live' }, 'connecting');
  const format = el('select', { id: 'export-format' }, el('option', { value: 'csv' }, 'CSV'),
    el('option', { value: 'ndjson' }, 'NDJSON'), el('option', { value: 'lp' }, 'InfluxDB line protocol'));
  const exportButton = el('button', { class: 'secondary', id: 'export', onclick: async () => {
    // Every raw point of the device in the range, through the streamed export (a file download).
    try {
      const to = Date.now() + 60e3;
      await download(`/api/v1/tenants/${tenant}/export?device=${encodeURIComponent(uid)}&from=${to - ranges[range.value]}&to=${to}&format=${format.value}`,
        `${uid}.${format.value === 'lp' ? 'txt' : format.value}`);
    } catch (e) { showError(e); }
  } }, 'Export');
  const note = el('span', { class: 'muted', id: 'chart-note' });
  const canvas = el('canvas', { id: 'chart' });
  show(el('h1', {}, uid, ' ', el('span', { class: 'muted' }, device.name || device.product), ' ', statusBadge(device)),
    el('p', { class: 'muted', id: 'last-activity' }, device.lastActivity ? 'Last heard from ' + formatTime(device.lastActivity) : 'Never heard from'),
    el('div', { class: 'card' }, el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Signal'), el('th', {}, 'Latest'),
      el('th', {}, 'At'))), latestBody)),
    el('div', { class: 'toolbar' }, signal, range, badge, note, format, exportButton),
    el('div', { class: 'card chart-box' }, canvas));

  async function load() {
    if (!signal.value) { note.textContent = 'no signal yet'; return; }
    const to = Date.now() + 60e3;
    const from = to - ranges[range.value];
    let points;
    if (ranges[range.value] <= 3600e3) {
      const series = await api('GET', `${base}/series/${encodeURIComponent(signal.value)}?from=${from}&to=${to}&limit=2000`);
      points = series.points.filter((p) => typeof p.value === 'number').map((p) => ({ x: p.time, y: p.value }));
      note.textContent = `${points.length} points${series.truncated ? ' (the first 2,000)' : ''}`;
    } else {
      // Served from the rollups: at most 1,000 buckets, aligned to whole minutes (no raw point is read).
      const bucket = Math.max(60e3, Math.ceil((to - from) / 1000 / 60e3) * 60e3);
      const start = Math.floor(from / bucket) * bucket;
      const end = Math.ceil(to / 60e3) * 60e3;
      const series = await api('GET', `${base}/series/${encodeURIComponent(signal.value)}?from=${start}&to=${end}&agg=mean&bucket=${bucket}`);
      points = series.buckets.filter((b) => typeof b.value === 'number').map((b) => ({ x: b.start, y: b.value }));
      note.textContent = `${points.length} means of ${bucket / 60e3} min`;
    }
    if (state.chart) state.chart.destroy();
    state.chart = new Chart(canvas, {
      type: 'line',
      data: { datasets: [{ label: signal.value, data: points, borderColor: '#2f6fdf', pointRadius: 0, borderWidth: 1.5 }] },
      options: {
        animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
        scales: { x: { type: 'linear', ticks: { callback: (v) => new Date(v).toLocaleTimeString(), maxTicksLimit: 8 } } },
        plugins: { legend: { display: false } },
      },
    });
  }
  signal.addEventListener('change', () => load().catch(showError));
  range.addEventListener('change', () => load().catch(showError));
  await load();

  // Live points of this device.
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}/api/v1/tenants/${tenant}/live?device=${encodeURIComponent(uid)}&apiKey=${encodeURIComponent(state.auth.token)}`);
  state.socket = socket;
  state.live = 0;
  socket.onopen = () => { badge.textContent = 'live'; badge.classList.add('live'); };
  socket.onclose = (event) => { badge.textContent = 'offline' + (event.reason ? ': ' + event.reason : ''); badge.classList.remove('live'); };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type !== 'points') return;
    for (const p of frame.points) {
      if (p.device !== uid) continue;
      const before = values.get(p.signal);
      if (!before || before.time <= p.time) values.set(p.signal, p);
      if (p.signal === signal.value && typeof p.value === 'number' && state.chart) {
        state.chart.data.datasets[0].data.push({ x: p.time, y: p.value });
        state.live += 1;
      }
    }
    renderLatest();
    if (state.chart) state.chart.update('none');
  };
}

function alarmTable(tenant, alarms, reload) {
  async function act(alarm, action) {
    try {
      await api('POST', `/api/v1/tenants/${tenant}/alarms/${encodeURIComponent(alarm.id)}/${action}`, {});
      await reload();
    } catch (e) { showError(e); }
  }
  return table([
    { title: 'Severity', cell: (a) => el('span', { class: 'sev-' + a.severity }, a.severity) },
    { title: 'Rule', cell: (a) => a.ruleID },
    { title: 'Device', cell: (a) => el('a', { href: `#/t/${tenant}/devices/${encodeURIComponent(a.originator)}` }, a.originator) },
    { title: 'Started', cell: (a) => formatTime(a.startTime) },
    { title: 'Value', cell: (a) => formatValue(a.lastValue) },
    { title: 'State', cell: (a) => [a.active ? 'active' : 'cleared', a.acknowledged ? 'acknowledged' : 'unacknowledged'].join(', ') },
    { title: '', cell: (a) => [
      a.acknowledged ? null : el('button', { class: 'secondary ack', 'data-alarm': a.id, onclick: () => act(a, 'ack') }, 'Acknowledge'),
      ' ',
      a.active ? el('button', { class: 'secondary clear', 'data-alarm': a.id, onclick: () => act(a, 'clear') }, 'Clear') : null,
    ] },
  ], alarms, 'No alarm.');
}

async function alarmsPage(tenant) {
  setNav(tenant, 'alarms');
  await whoAmI();
  const filter = el('select', { id: 'alarm-filter' }, el('option', { value: 'true' }, 'Open'),
    el('option', { value: 'false' }, 'Closed'), el('option', { value: '' }, 'All'));
  filter.value = sessionStorage.getItem('iotd.alarmFilter') || 'true';
  const list = el('div');
  async function reload() {
    sessionStorage.setItem('iotd.alarmFilter', filter.value);
    const query = filter.value ? `?open=${filter.value}&limit=500` : '?limit=500';
    const alarms = await api('GET', `/api/v1/tenants/${tenant}/alarms${query}`);
    list.replaceChildren(alarmTable(tenant, alarms, reload));
  }
  filter.addEventListener('change', () => reload().catch(showError));
  const csv = el('button', { class: 'secondary', id: 'alarms-csv', onclick: () => {
    const query = filter.value ? `?open=${filter.value}&format=csv` : '?format=csv';
    download(`/api/v1/tenants/${tenant}/alarms${query}`, `${tenant}-alarms.csv`).catch(showError);
  } }, 'Download CSV');
  show(el('h1', {}, 'Alarms'), el('div', { class: 'toolbar' }, filter, csv), list);
  await reload();
}

/** A form's inputs by field name; an API error naming one of them is shown under it. */
function fieldError(fields, error) {
  for (const node of Object.values(fields)) {
    node.classList.remove('invalid');
    const next = node.nextElementSibling;
    if (next && next.classList.contains('field-error')) next.remove();
  }
  const message = error.message || String(error);
  let best = null;
  for (const name of Object.keys(fields)) {
    const at = message.search(new RegExp('(^|[^A-Za-z])' + name + '([^A-Za-z]|$)'));
    if (at >= 0 && (!best || at < best.at)) best = { name, at };
  }
  if (!best) return false;
  const input = fields[best.name];
  input.classList.add('invalid');
  input.after(el('div', { class: 'field-error', 'data-field': best.name }, message));
  return true;
}

function describeSelector(devices) {
  if (!devices) return '';
  return devices.device ? 'device ' + devices.device : devices.product ? 'product ' + devices.product : JSON.stringify(devices);
}

async function rulesPage(tenant) {
  setNav(tenant, 'rules');
  await whoAmI();
  const [rules, products] = await Promise.all([
    api('GET', `/api/v1/tenants/${tenant}/rules`),
    api('GET', `/api/v1/tenants/${tenant}/products`),
  ]);
  async function remove(rule) {
    try {
      await api('DELETE', `/api/v1/tenants/${tenant}/rules/${encodeURIComponent(rule.id)}`);
      await rulesPage(tenant);
    } catch (e) { showError(e); }
  }
  const fields = {
    id: el('input', { name: 'id', required: true }),
    product: el('select', { name: 'product' }, products.map((p) => el('option', { value: p.id }, p.id))),
    signal: el('input', { name: 'signal' }),
    min: el('input', { name: 'min', type: 'number', step: 'any' }),
    max: el('input', { name: 'max', type: 'number', step: 'any' }),
    alarmWhen: el('select', { name: 'alarmWhen' }, el('option', { value: 'outside' }, 'outside [min, max]'),
      el('option', { value: 'inside' }, 'inside [min, max]')),
    severity: el('select', { name: 'severity' }, ['critical', 'major', 'minor', 'warning', 'info'].map((v) => el('option', { value: v }, v))),
    debounce: el('input', { name: 'debounce', type: 'number', value: '1', min: '1' }),
    hysteresis: el('input', { name: 'hysteresis', type: 'number', step: 'any', value: '0' }),
  };
  fields.severity.value = 'major';
  function edit(rule) {
    if (rule.kind !== 'range') return;
    fields.id.value = rule.id;
    if (rule.devices && rule.devices.product) fields.product.value = rule.devices.product;
    fields.signal.value = rule.signal || '';
    fields.min.value = rule.min === undefined ? '' : rule.min;
    fields.max.value = rule.max === undefined ? '' : rule.max;
    fields.alarmWhen.value = rule.alarmWhen;
    fields.severity.value = rule.severity;
    fields.debounce.value = (rule.debounce && rule.debounce.count) || 1;
    fields.hysteresis.value = rule.hysteresis;
  }
  const templates = {
    range: { kind: 'range', id: 'too-hot', devices: { product: products[0] ? products[0].id : 'p' }, signal: 'temperature', max: 80, alarmWhen: 'outside', severity: 'major', debounce: { count: 1 }, hysteresis: 1 },
    joint: { kind: 'joint', id: 'hot-while-humid', product: products[0] ? products[0].id : 'p', parameters: [
      { name: 't', signal: 'temperature', window: { count: 3 }, reducer: 'mean' }, { name: 'h', signal: 'humidity', window: { count: 1 }, reducer: 'last' }],
    condition: { language: 'lua', source: 'function check(p) return (p.t or 0) > 30 and (p.h or 0) > 80 end', function: 'check' }, severity: 'warning', debounce: { count: 1 } },
    offline: { kind: 'offline', id: 'silent', devices: { product: products[0] ? products[0].id : 'p' }, intervalMillis: 60000, toleranceMillis: 30000, severity: 'warning' },
  };
  const json = jsonEditor('rule-json', templates.joint, async (rule) => {
    await api('POST', `/api/v1/tenants/${tenant}/rules`, rule);
    await rulesPage(tenant);
  });
  const kind = el('select', { id: 'rule-kind' }, Object.keys(templates).map((k) => el('option', { value: k }, k + ' rule')));
  kind.value = 'joint';
  kind.addEventListener('change', () => json.set(templates[kind.value]));
  function editJSON(rule) { json.set(rule); }
  const saved = el('div');
  const form = el('form', {
    class: 'card form', id: 'rule-form', onsubmit: async (event) => {
      event.preventDefault();
      saved.replaceChildren();
      const rule = {
        kind: 'range', id: fields.id.value, devices: { product: fields.product.value }, signal: fields.signal.value,
        alarmWhen: fields.alarmWhen.value, severity: fields.severity.value,
        debounce: { count: parseInt(fields.debounce.value, 10) || 1 }, hysteresis: parseFloat(fields.hysteresis.value) || 0,
      };
      if (fields.min.value !== '') rule.min = parseFloat(fields.min.value);
      if (fields.max.value !== '') rule.max = parseFloat(fields.max.value);
      try {
        await api('POST', `/api/v1/tenants/${tenant}/rules`, rule);
        await rulesPage(tenant);
      } catch (e) {
        if (!fieldError(fields, e)) saved.replaceChildren(errorBox(e));
      }
    },
  },
  el('h2', {}, 'Range rule (new, or edit one above)'),
  Object.entries(fields).map(([name, input]) => el('label', {}, el('span', {}, name), input)),
  el('button', { type: 'submit', id: 'save-rule' }, 'Save'), saved);
  show(el('h1', {}, 'Rules'), table([
    { title: 'Rule', cell: (r) => r.id },
    { title: 'Kind', cell: (r) => r.kind },
    { title: 'Devices', cell: (r) => describeSelector(r.devices) },
    { title: 'Signal', cell: (r) => r.signal || (r.parameters || []).map((p) => p.signal).join(', ') },
    { title: 'Bounds', cell: (r) => r.kind === 'range' ? `${r.alarmWhen} [${r.min === undefined ? '−∞' : r.min}, ${r.max === undefined ? '∞' : r.max}]` : '' },
    { title: 'Severity', cell: (r) => el('span', { class: 'sev-' + r.severity }, r.severity) },
    { title: '', cell: (r) => [
      r.kind === 'range' ? el('button', { class: 'secondary', onclick: () => edit(r) }, 'Edit') : null, ' ',
      el('button', { class: 'secondary', onclick: () => editJSON(r) }, 'JSON'), ' ',
      el('button', { class: 'secondary', onclick: () => remove(r) }, 'Remove')] },
  ], rules, 'No rule yet.'), form,
  el('div', { class: 'card' }, el('h2', {}, 'Any rule as JSON (range, joint with a Lua, JavaScript or Python condition, offline)'),
    el('div', { class: 'toolbar' }, kind, json.button), json.body, json.message));
}

async function statisticsPage(tenant) {
  setNav(tenant, 'statistics');
  await whoAmI();
  const jobs = await api('GET', `/api/v1/tenants/${tenant}/statistics/jobs`);
  const results = el('div', { id: 'statistics-results' });
  async function showResults(job) {
    const found = await api('GET', `/api/v1/tenants/${tenant}/statistics/jobs/${encodeURIComponent(job.id)}/results`);
    const names = [...new Set(found.flatMap((r) => Object.keys(r.values)))].sort();
    results.replaceChildren(el('h2', {}, `Results of ${job.id}`),
      el('div', { class: 'toolbar' }, el('button', { class: 'secondary', id: 'results-csv', onclick: () =>
        download(`/api/v1/tenants/${tenant}/statistics/jobs/${encodeURIComponent(job.id)}/results?format=csv`, `${job.id}.csv`).catch(showError) }, 'Download CSV')),
      table([{ title: 'Fired', cell: (r) => formatTime(r.fireTime) }, { title: 'Window', cell: (r) => formatTime(r.windowStart) + ' – ' + formatTime(r.windowEnd) }]
        .concat(names.map((n) => ({ title: n, cell: (r) => formatValue(r.values[n]) }))), found.slice().reverse(), 'No result yet.'));
  }
  const fields = {
    id: el('input', { name: 'id', required: true }),
    cron: el('input', { name: 'cron', value: '0 * * * *' }),
    timeZone: el('input', { name: 'timeZone', value: 'UTC' }),
    leadMillis: el('input', { name: 'leadMillis', type: 'number', value: '3600000', min: '1' }),
    parameters: el('textarea', { name: 'parameters', rows: 4, cols: 80 },
      JSON.stringify([{ name: 'peak', device: 'device-uid', signal: 'temperature', reducer: 'max' }], null, 1)),
  };
  const saved = el('div');
  function edit(job) {
    fields.id.value = job.id;
    fields.cron.value = job.cron;
    fields.timeZone.value = job.timeZone || 'UTC';
    fields.leadMillis.value = job.leadMillis;
    fields.parameters.value = JSON.stringify(job.parameters, null, 1);
  }
  const form = el('form', { class: 'card form', id: 'statistics-form', onsubmit: async (event) => {
    event.preventDefault();
    saved.replaceChildren();
    let parameters;
    try { parameters = JSON.parse(fields.parameters.value); } catch (e) {
      fieldError(fields, new Error('parameters: not JSON (' + e.message + ')')); return;
    }
    const job = { id: fields.id.value, cron: fields.cron.value, timeZone: fields.timeZone.value,
      leadMillis: parseInt(fields.leadMillis.value, 10) || 0, parameters, catchUp: { policy: 'none' } };
    try {
      await api('POST', `/api/v1/tenants/${tenant}/statistics/jobs`, job);
      await statisticsPage(tenant);
    } catch (e) {
      if (!fieldError(fields, e)) saved.replaceChildren(errorBox(e));
    }
  } },
  el('h2', {}, 'Statistics job (new, or edit one above): each parameter reduces one signal over [fire − leadMillis, fire)'),
  Object.entries(fields).map(([name, input]) => el('label', {}, el('span', {}, name), input)),
  el('button', { type: 'submit', id: 'save-job' }, 'Save'), saved);
  show(el('h1', {}, 'Statistics jobs'), table([
    { title: 'Job', cell: (j) => j.id },
    { title: 'Cron', cell: (j) => j.cron + ' ' + (j.timeZone || 'UTC') },
    { title: 'Window', cell: (j) => (j.leadMillis / 60e3) + ' min' },
    { title: 'Parameters', cell: (j) => j.parameters.map((p) => `${p.name} = ${p.reducer}(${p.device}.${p.signal})`).join(', ') },
    { title: '', cell: (j) => [
      el('button', { class: 'secondary', onclick: () => showResults(j).catch(showError) }, 'Results'), ' ',
      el('button', { class: 'secondary', onclick: () => edit(j) }, 'Edit'), ' ',
      el('button', { class: 'secondary', onclick: async () => {
        try { await api('DELETE', `/api/v1/tenants/${tenant}/statistics/jobs/${encodeURIComponent(j.id)}`); await statisticsPage(tenant); } catch (e) { showError(e); }
      } }, 'Remove')] },
  ], jobs, 'No job yet.'), results, form);
}

async function reportsPage(tenant) {
  setNav(tenant, 'reports');
  await whoAmI();
  const reports = await api('GET', `/api/v1/tenants/${tenant}/reports`);
  const runs = el('div', { id: 'report-runs' });
  const base = (r) => `/api/v1/tenants/${tenant}/reports/${encodeURIComponent(r.id || r.report)}`;
  async function showRuns(report) {
    const found = await api('GET', base(report) + '/runs');
    runs.replaceChildren(el('h2', {}, `Runs of ${report.id}`), table([
      { title: 'Period', cell: (r) => formatTime(r.from) + ' – ' + formatTime(r.to) },
      { title: 'Made', cell: (r) => formatTime(r.generatedAt) },
      { title: 'Files', cell: (r) => [el('button', { class: 'secondary', onclick: () =>
        download(`${base(report)}/runs/${r.to}`, `${report.id}-${r.to}.html`).catch(showError) }, 'report.html'),
      ...r.files.flatMap((f) => [' ', el('button', { class: 'secondary run-file', onclick: () =>
        download(`${base(report)}/runs/${r.to}/${encodeURIComponent(f)}`, `${report.id}-${r.to}-${f}`).catch(showError) }, f)])] },
    ], found, 'No run yet.'));
  }
  async function runNow(report, deliver) {
    try {
      await api('POST', `${base(report)}/run?deliver=${deliver}`);
      await showRuns(report);
    } catch (e) { showError(e); }
  }
  const template = { id: 'daily', title: 'Daily report', cron: '0 6 * * *', timeZone: 'UTC', periodMillis: 86400000,
    devices: ['device-uid'], signals: [], aggregates: ['count', 'mean', 'min', 'max'], bucketMillis: 3600000, alarms: true,
    recipients: [{ channel: 'email', to: 'ops@example.com' }] };
  const json = jsonEditor('report-json', template, async (report) => {
    await api('POST', `/api/v1/tenants/${tenant}/reports`, report);
    await reportsPage(tenant);
  });
  show(el('h1', {}, 'Reports'), table([
    { title: 'Report', cell: (r) => r.title },
    { title: 'Id', cell: (r) => r.id },
    { title: 'Schedule', cell: (r) => `${r.cron} ${r.timeZone || 'UTC'}` + (r.nextFire ? ' · next ' + formatTime(r.nextFire) : '') },
    { title: 'Devices', cell: (r) => r.devices.join(', ') },
    { title: 'Recipients', cell: (r) => (r.recipients || []).map((x) => `${x.to} (${x.channel})`).join(', ') },
    { title: '', cell: (r) => [
      el('button', { class: 'secondary run-report', 'data-report': r.id, onclick: () => runNow(r, false) }, 'Run now'), ' ',
      el('button', { class: 'secondary', onclick: () => runNow(r, true) }, 'Run and send'), ' ',
      el('button', { class: 'secondary', onclick: () => showRuns(r).catch(showError) }, 'Runs'), ' ',
      el('button', { class: 'secondary', onclick: () => { const copy = Object.assign({}, r); delete copy.nextFire; json.set(copy); } }, 'Edit'), ' ',
      el('button', { class: 'secondary', onclick: async () => {
        try { await api('DELETE', base(r)); await reportsPage(tenant); } catch (e) { showError(e); }
      } }, 'Delete')] },
  ], reports, 'No report yet: write one below.'), runs,
  el('div', { class: 'card' }, el('h2', {}, 'New report, or edit one above (an HTML document with CSV files, on a cron)'),
    el('div', { class: 'toolbar' }, json.button), json.body, json.message));
}

async function outboxPage(tenant) {
  setNav(tenant, 'outbox');
  await whoAmI();
  const status = el('select', { id: 'outbox-status' }, ['pending', 'sending', 'delivered', 'dead_letter'].map((v) =>
    el('option', { value: v }, v.replace('_', ' '))));
  status.value = sessionStorage.getItem('iotd.outboxStatus') || 'dead_letter';
  const list = el('div');
  async function reload() {
    sessionStorage.setItem('iotd.outboxStatus', status.value);
    const messages = await api('GET', `/api/v1/tenants/${tenant}/notifications/outbox?status=${status.value}&limit=500`);
    list.replaceChildren(table([
      { title: 'Created', cell: (m) => formatTime(m.createdAt) },
      { title: 'Channel', cell: (m) => m.channel },
      { title: 'Recipient', cell: (m) => m.recipient },
      { title: 'Subject', cell: (m) => m.subject || '' },
      { title: 'Attempts', cell: (m) => m.attempts },
      { title: 'Last error', cell: (m) => m.lastError || '' },
      { title: '', cell: (m) => m.status === 'dead_letter' ? el('button', {
        class: 'secondary retry', onclick: async () => {
          try { await api('POST', `/api/v1/tenants/${tenant}/notifications/outbox/${encodeURIComponent(m.id)}/retry`, {}); await reload(); } catch (e) { showError(e); }
        },
      }, 'Retry') : '' },
    ], messages, 'No message in this state.'));
  }
  status.addEventListener('change', () => reload().catch(showError));
  show(el('h1', {}, 'Notification outbox'), el('div', { class: 'toolbar' }, status), list);
  await reload();
}

async function transportsPage(tenant) {
  setNav(tenant, 'transports');
  await whoAmI();
  const sections = [
    { title: 'MQTT clients', path: '/api/v1/mqtt/clients', key: (x) => x.spec.id, filter: (x) => x.spec.tenant === tenant,
      columns: [['Client', (x) => x.spec.id], ['Broker', (x) => `${x.spec.broker.host || '127.0.0.1'}:${x.spec.broker.port || 1883}`],
        ['State', (x) => x.status.state + (x.throttle ? ' (throttled: ' + x.throttle.reason + ')' : '')],
        ['Stored / rejected', (x) => `${x.outcomes.stored || 0} / ${x.outcomes.rejected || 0}`], ['Last error', (x) => x.status.lastError || '']] },
    { title: 'Modbus devices', path: `/api/v1/tenants/${tenant}/modbus/devices`, key: (x) => x.uid, filter: () => true,
      columns: [['Device', (x) => x.uid], ['Endpoint', (x) => x.endpoint], ['Every', (x) => x.intervalMillis + ' ms'],
        ['Polls ok / failed', (x) => `${x.successes} / ${x.failures}`], ['Last error', (x) => x.lastError || '']] },
    { title: 'CoAP observations', path: '/api/v1/coap/observations', key: (x) => x.spec.id, filter: (x) => x.spec.tenant === tenant,
      columns: [['Observation', (x) => x.spec.id], ['Resource', (x) => x.spec.uri], ['Device', (x) => x.spec.deviceUID],
        ['State', (x) => x.state], ['Notifications / stored', (x) => `${x.notifications} / ${x.stored}`], ['Last error', (x) => x.lastError || '']] },
  ];
  const parts = [el('h1', {}, 'Transports')];
  for (const section of sections) {
    const box = el('div');
    const body = el('textarea', { rows: 3, cols: 80, placeholder: 'A new one as JSON (see /openapi.yaml), then Create' });
    const message = el('div');
    async function reload() {
      let items;
      try { items = (await api('GET', section.path)).filter(section.filter); } catch (e) {
        box.replaceChildren(el('p', { class: 'muted' }, e.message));
        return;
      }
      box.replaceChildren(table(section.columns.map(([title, cell]) => ({ title, cell })).concat([{ title: '', cell: (x) =>
        el('button', { class: 'secondary', onclick: async () => {
          try { await api('DELETE', section.path + '/' + encodeURIComponent(section.key(x))); await reload(); } catch (e) { message.replaceChildren(errorBox(e)); }
        } }, 'Remove') }]), items, 'None.'));
    }
    const create = el('button', { class: 'secondary', onclick: async () => {
      message.replaceChildren();
      try { await api('POST', section.path, JSON.parse(body.value)); body.value = ''; await reload(); } catch (e) { message.replaceChildren(errorBox(e)); }
    } }, 'Create');
    parts.push(el('h2', {}, section.title), box, el('div', { class: 'toolbar' }, body, create), message);
    await reload();
  }
  show(...parts);
}

// ---------------------------------------------------------------- big screens

const screenTemplate = {
  title: 'Boiler room', refreshSeconds: 10,
  tiles: [
    { type: 'value', title: 'Temperature', device: 'DEVICE', signal: 'SIGNAL' },
    { type: 'gauge', device: 'DEVICE', signal: 'SIGNAL', min: 0, max: 100 },
    { type: 'line', device: 'DEVICE', signal: 'SIGNAL', minutes: 60, width: 2 },
    { type: 'alarms', width: 2 },
    { type: 'status', devices: ['DEVICE'], width: 2 },
  ],
};

async function screensPage(tenant) {
  setNav(tenant, 'screens');
  await whoAmI();
  const screens = await api('GET', `/api/v1/tenants/${tenant}/dashboards`);
  const id = el('input', { id: 'screen-id', placeholder: 'id, e.g. boiler-room' });
  const body = el('textarea', { id: 'screen-json', rows: 16, cols: 100 }, JSON.stringify(screenTemplate, null, 2));
  const message = el('div');
  function edit(screen) {
    id.value = screen.id;
    const copy = Object.assign({}, screen);
    delete copy.id;
    body.value = JSON.stringify(copy, null, 2);
  }
  const save = el('button', { id: 'save-screen', onclick: async () => {
    message.replaceChildren();
    try {
      await api('PUT', `/api/v1/tenants/${tenant}/dashboards/${encodeURIComponent(id.value)}`, JSON.parse(body.value));
      await screensPage(tenant);
    } catch (e) { message.replaceChildren(errorBox(e)); }
  } }, 'Save');
  show(el('h1', {}, 'Big screens'), table([
    { title: 'Screen', cell: (d) => el('a', { href: `#/t/${tenant}/screens/${encodeURIComponent(d.id)}` }, d.title) },
    { title: 'Id', cell: (d) => d.id },
    { title: 'Tiles', cell: (d) => d.tiles.length },
    { title: '', cell: (d) => [el('button', { class: 'secondary', onclick: () => edit(d) }, 'Edit'), ' ',
      el('button', { class: 'secondary', onclick: async () => {
        try { await api('DELETE', `/api/v1/tenants/${tenant}/dashboards/${encodeURIComponent(d.id)}`); await screensPage(tenant); } catch (e) { showError(e); }
      } }, 'Delete')] },
  ], screens, 'No screen yet: write one below (a JSON document of tiles: value, gauge, line, alarms, status).'),
  el('h2', {}, 'New screen, or edit one above'), el('div', { class: 'toolbar' }, id, save), body, message);
}

async function screenPage(tenant, screenID) {
  await whoAmI();
  const screen = await api('GET', `/api/v1/tenants/${tenant}/dashboards/${encodeURIComponent(screenID)}`);
  document.body.classList.add('screen-mode');
  const grid = el('div', { class: 'screen-grid' });
  const updaters = [];
  const charts = [];
  const base = (uid) => `/api/v1/tenants/${tenant}/devices/${encodeURIComponent(uid)}`;
  for (const tile of screen.tiles) {
    const box = el('div', { class: 'screen-tile tile-' + tile.type, style: null });
    box.style.gridColumn = 'span ' + (tile.width || 1);
    const title = tile.title || (tile.device ? `${tile.device} · ${tile.signal}` : tile.type === 'alarms' ? 'Open alarms' : 'Devices');
    box.append(el('div', { class: 'screen-title' }, title));
    if (tile.type === 'value' || tile.type === 'gauge') {
      const value = el('div', { class: 'screen-value' }, '…');
      const at = el('div', { class: 'muted' });
      let gauge = null;
      if (tile.type === 'gauge') {
        const canvas = el('canvas');
        box.append(el('div', { class: 'gauge-box' }, canvas));
        gauge = new Chart(canvas, {
          type: 'doughnut',
          data: { datasets: [{ data: [0, 1], backgroundColor: ['#2f6fdf', '#e6eaf0'], borderWidth: 0 }] },
          options: { rotation: -90, circumference: 180, cutout: '70%', animation: false, maintainAspectRatio: false,
            plugins: { legend: { display: false }, tooltip: { enabled: false } } },
        });
        charts.push(gauge);
      }
      box.append(value, at);
      const show = (p) => {
        value.textContent = formatValue(p.value);
        at.textContent = formatTime(p.time);
        if (gauge && typeof p.value === 'number') {
          const share = Math.max(0, Math.min(1, (p.value - tile.min) / (tile.max - tile.min)));
          gauge.data.datasets[0].data = [share, 1 - share];
          gauge.update('none');
        }
      };
      updaters.push({ device: tile.device, signal: tile.signal, live: show, refresh: async () => {
        const latest = await api('GET', `${base(tile.device)}/latest?signals=${encodeURIComponent(tile.signal)}`);
        if (latest.length) show(latest[0]);
      } });
    } else if (tile.type === 'line') {
      const canvas = el('canvas');
      box.append(el('div', { class: 'screen-chart' }, canvas));
      const chart = new Chart(canvas, {
        type: 'line',
        data: { datasets: [{ data: [], borderColor: '#2f6fdf', pointRadius: 0, borderWidth: 1.5 }] },
        options: { animation: false, maintainAspectRatio: false, parsing: false, plugins: { legend: { display: false } },
          scales: { x: { type: 'linear', ticks: { callback: (v) => new Date(v).toLocaleTimeString(), maxTicksLimit: 6 } } } },
      });
      charts.push(chart);
      const minutes = tile.minutes || 60;
      let loaded = false;
      updaters.push({ device: tile.device, signal: tile.signal, live: (p) => {
        if (typeof p.value !== 'number') return;
        chart.data.datasets[0].data.push({ x: p.time, y: p.value });
        state.live += 1;
        chart.update('none');
      }, refresh: async () => {
        if (loaded) return;
        const to = Date.now() + 60e3;
        const from = to - minutes * 60e3;
        const path = `${base(tile.device)}/series/${encodeURIComponent(tile.signal)}?from=${from}&to=${to}`;
        if (minutes <= 60) {
          const series = await api('GET', path + '&limit=2000');
          chart.data.datasets[0].data = series.points.filter((p) => typeof p.value === 'number').map((p) => ({ x: p.time, y: p.value }));
        } else {
          const bucket = Math.max(60e3, Math.ceil(minutes * 60e3 / 500 / 60e3) * 60e3);
          const series = await api('GET', path + `&agg=mean&bucket=${bucket}`);
          chart.data.datasets[0].data = series.buckets.filter((b) => typeof b.value === 'number').map((b) => ({ x: b.start, y: b.value }));
        }
        chart.update('none');
        loaded = true;
      } });
    } else if (tile.type === 'alarms') {
      const list = el('div');
      box.append(list);
      updaters.push({ refresh: async () => {
        const alarms = await api('GET', `/api/v1/tenants/${tenant}/alarms?open=true&limit=10`);
        list.replaceChildren(alarms.length ? el('ul', { class: 'screen-list' }, alarms.map((a) =>
          el('li', {}, el('span', { class: 'sev-' + a.severity }, a.severity), ' ', a.ruleID, ' · ', a.originator, ' · ', formatTime(a.startTime))))
          : el('div', { class: 'screen-value ok' }, 'none'));
      } });
    } else if (tile.type === 'status') {
      const list = el('ul', { class: 'screen-list' });
      box.append(list);
      updaters.push({ refresh: async () => {
        const rows = await Promise.all(tile.devices.map(async (uid) => {
          const device = await api('GET', base(uid)).catch(() => ({ uid }));
          return el('li', {}, statusBadge(device) || el('span', { class: 'badge' }, 'unknown'), ' ', uid,
            device.lastActivity ? ' · ' + formatTime(device.lastActivity) : '');
        }));
        list.replaceChildren(...rows);
      } });
    }
    grid.append(box);
  }
  const exit = el('button', { class: 'secondary', id: 'exit-screen', onclick: () => { history.back(); } }, 'Back');
  const full = el('button', { class: 'secondary', onclick: () => document.documentElement.requestFullscreen().catch(() => {}) }, 'Full screen');
  show(el('div', { class: 'screen-head' }, el('h1', {}, screen.title), full, exit), grid);
  const refreshAll = () => Promise.all(updaters.map((u) => u.refresh().catch(() => {})));
  await refreshAll();
  state.screenTimer = setInterval(refreshAll, (screen.refreshSeconds || 10) * 1000);
  state.screenCharts = charts;
  // Live points for the tiles' devices.
  const devices = [...new Set(updaters.filter((u) => u.device).map((u) => u.device))];
  if (devices.length) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = devices.map((d) => 'device=' + encodeURIComponent(d)).join('&');
    const socket = new WebSocket(`${scheme}//${location.host}/api/v1/tenants/${tenant}/live?${query}&apiKey=${encodeURIComponent(state.auth.token)}`);
    state.socket = socket;
    state.live = 0;
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type !== 'points') return;
      for (const p of frame.points) {
        for (const u of updaters) if (u.live && u.device === p.device && u.signal === p.signal) u.live(p);
      }
    };
  }
}

// ---------------------------------------------------------------- routing

/** Downloads an API resource (with the session's credentials) as a file. */
async function download(path, name) {
  const response = await fetch(path, { headers: { 'Authorization': 'Bearer ' + state.auth.token } });
  if (!response.ok) throw new APIError(response.status, await response.json().catch(() => null));
  const link = el('a', { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

/** A JSON document editor: a textarea, a Save button that hands the parsed document to `save`, and the API's
 * refusal (which names the field) shown under it. */
function jsonEditor(id, initial, save) {
  const body = el('textarea', { id, rows: 14, cols: 100 }, JSON.stringify(initial, null, 2));
  const message = el('div');
  const button = el('button', { id: id + '-save', onclick: async () => {
    message.replaceChildren();
    let doc;
    try { doc = JSON.parse(body.value); } catch (e) { message.replaceChildren(errorBox(new Error('Not JSON: ' + e.message))); return; }
    try { await save(doc); } catch (e) { message.replaceChildren(el('div', { class: 'error field-error', 'data-field': id }, e.message)); }
  } }, 'Save');
  return { body, message, button, set: (doc) => { body.value = JSON.stringify(doc, null, 2); body.focus(); } };
}

function showError(error) {
  if (error && error.status === 401) return;
  const view = document.getElementById('view');
  view.prepend(errorBox(error));
}

async function route() {
  closeLive();
  const [path, search] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = path.split('/').map(decodeURIComponent);
  const query = new URLSearchParams(search || '');
  if (!state.auth && parts[0] !== 'signin') { location.hash = '#/signin'; return; }
  try {
    if (parts[0] === 'signin') signInPage();
    else if (parts[0] === 't' && parts[1] && !parts[2]) await overviewPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'devices' && parts[3]) await devicePage(parts[1], parts[3]);
    else if (parts[0] === 't' && parts[2] === 'devices') await devicesPage(parts[1], query);
    else if (parts[0] === 't' && parts[2] === 'alarms') await alarmsPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'rules') await rulesPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'statistics') await statisticsPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'reports') await reportsPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'outbox') await outboxPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'transports') await transportsPage(parts[1]);
    else if (parts[0] === 't' && parts[2] === 'screens' && parts[3]) await screenPage(parts[1], parts[3]);
    else if (parts[0] === 't' && parts[2] === 'screens') await screensPage(parts[1]);
    else await tenantsPage();
  } catch (error) {
    if (error.status !== 401) show(errorBox(error));
  }
}

document.getElementById('signout').addEventListener('click', () => signOut(true));
window.addEventListener('hashchange', route);
route();
