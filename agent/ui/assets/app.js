// podlife's page: the node (sources, pods; live from the transitions watch)
// and each pod's timeline across the runtime, the kubelet and the API
// server. It reads only the agent's own API (../api/v1/ from this page), so
// it works the same on the agent, through `podlife ui` and through the API
// server's pod proxy.
'use strict';
(() => {
  const $ = (s) => document.querySelector(s);
  const api = (p) => new URL('../api/v1/' + p, location.href).toString();
  const STAGES = ['Initializing', 'Starting', 'Serving', 'Terminating', 'Terminated', 'Failing', 'Unknown'];
  const NS = 'http://www.w3.org/2000/svg';
  const S = { node: '', sources: {}, blackBox: false, pods: [], sort: { key: 'namespace', dir: 1 }, pod: null, nodeHistory: [],
    view: null, route: { page: 'node' }, selected: null, gen: 0, full: null };

  // el builds an element: attributes, then children (strings or nodes).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    e.append(...kids.filter((k) => k != null && k !== false));
    return e;
  }
  function sv(tag, attrs, ...kids) {
    const e = document.createElementNS(NS, tag);
    setAttrs(e, attrs);
    e.append(...kids.filter((k) => k != null));
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
  }
  const ms = (t) => (typeof t === 'number' ? t : t ? Date.parse(t) : NaN);
  function utc(t) { return new Date(ms(t)).toISOString().replace('T', ' ').replace(/(\.\d{3})\d*Z$/, '$1 UTC'); }
  // when is a time in the viewer's zone, with UTC on hover.
  function when(t) {
    if (!t || isNaN(ms(t))) return '–';
    const d = new Date(ms(t));
    return el('time', { datetime: d.toISOString(), title: utc(t), text: d.toLocaleString() });
  }
  function span(d) {
    if (!(d >= 0)) return '–';
    const s = Math.floor(d / 1000);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60 ? ' ' + (s % 60) + 's' : '');
    if (s < 86400) return Math.floor(s / 3600) + 'h' + (Math.floor(s / 60) % 60 ? ' ' + (Math.floor(s / 60) % 60) + 'm' : '');
    return Math.floor(s / 86400) + 'd' + (Math.floor(s / 3600) % 24 ? ' ' + (Math.floor(s / 3600) % 24) + 'h' : '');
  }
  async function getJSON(path) {
    const r = await fetch(api(path), { cache: 'no-store' });
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      const e = new Error(msg);
      e.status = r.status;
      throw e;
    }
    return r.json();
  }
  function stage(s) { return el('span', { class: 'stage s-' + s, text: s }); }

  // ---- the node page ----
  const ready = (p) => {
    const cs = (p.containers || []).filter((c) => c.kind !== 'init' && c.kind !== 'ephemeral');
    return [cs.filter((c) => c.ready).length, cs.length];
  };
  const restarts = (p) => (p.containers || []).reduce((n, c) => n + (c.restartCount || 0), 0);
  const why = (p) => (p.unknownCause ? p.unknownCause + ': ' : '') + (p.stageReason || '');
  const sortKeys = {
    namespace: (p) => p.namespace, name: (p) => p.name, stage: (p) => STAGES.indexOf(p.stage),
    ready: (p) => { const [r, n] = ready(p); return n ? r / n : 0; }, restarts, age: (p) => -ms(p.created) || 0, why,
  };

  // loadPods reads the node's pods; a load begun for another page (gen) is
  // dropped, so that loads finishing out of order never show the wrong one.
  async function loadPods(gen) {
    const r = await getJSON('pods');
    if (gen !== S.gen) return;
    S.node = r.node;
    S.sources = r.sources || {};
    S.blackBox = !!r.blackBox;
    S.pods = r.pods || [];
    renderHeader();
    if (S.route.page === 'node') renderNode();
  }
  function renderHeader() {
    $('#node').textContent = S.node ? 'node ' + S.node : '';
    document.title = 'podlife' + (S.node ? ' · ' + S.node : '');
    renderBanner();
  }
  // renderBanner names what cuts the node or the kubelet off, and since when.
  function renderBanner() {
    const lines = [];
    const link = S.sources['kubelet-apiserver'];
    if (link && link.configured && !link.up) {
      lines.push(['The kubelet is cut off from the API server', link.lastSuccess, link.lastError]);
    }
    for (const [name, h] of Object.entries(S.sources)) {
      if (name !== 'kubelet-apiserver' && h.configured && !h.up) lines.push([label(name) + ' unreachable', h.lastSuccess, h.lastError]);
    }
    const causes = {};
    for (const p of S.pods) {
      if (!p.unknownCause) continue;
      const c = (causes[p.unknownCause] ||= { n: 0, since: null });
      c.n++;
      if (p.unknownSince && (!c.since || ms(p.unknownSince) < ms(c.since))) c.since = p.unknownSince;
    }
    for (const [cause, c] of Object.entries(causes)) lines.push([`Unknown (${cause}): ${c.n} pod${c.n > 1 ? 's' : ''}`, c.since, '']);
    const b = $('#banner');
    const key = JSON.stringify(lines);
    if (b.dataset.key === key) return; // announced once, not at every refresh
    b.dataset.key = key;
    b.hidden = lines.length === 0;
    b.replaceChildren(...lines.map(([what, since, err]) =>
      el('p', null, el('strong', { text: what }), since ? ' — since ' : '', since ? when(since) : '', err ? ': ' + err : '')));
  }
  function label(source) {
    return { runtime: 'Container runtime', kubelet: 'Kubelet', apiserver: 'API server', 'kubelet-apiserver': "Kubelet's link to the API server" }[source] || source;
  }
  function renderNode() {
    $('#sources').replaceChildren(...Object.keys(S.sources).sort().map((name) => {
      const h = S.sources[name];
      const st = !h.configured ? 'not configured' : h.up ? 'up' : 'down';
      return el('li', { class: h.configured && !h.up ? 'down' : 'up' }, label(name) + ': ', el('span', { class: 'state', text: st }),
        h.mode ? ` · ${h.mode}` : '', h.lastError ? el('div', { class: 'why', text: h.lastError }) : '');
    }));
    fillSelect($('#f-ns'), [...new Set(S.pods.map((p) => p.namespace))].sort());
    fillSelect($('#f-stage'), STAGES);
    const ns = $('#f-ns').value, st = $('#f-stage').value, text = $('#f-text').value.toLowerCase();
    const key = sortKeys[S.sort.key];
    const rows = S.pods.filter((p) => (!ns || p.namespace === ns) && (!st || p.stage === st) &&
      (!text || [p.namespace, p.name, p.stage, why(p)].join(' ').toLowerCase().includes(text)))
      .sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * S.sort.dir || a.name.localeCompare(b.name); });
    $('#count').textContent = `(${rows.length} of ${S.pods.length})`;
    const now = Date.now();
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#pods tbody tr');
    const refocus = focused ? focused.dataset.pod : null;
    $('#pods tbody').replaceChildren(...rows.map((p) => {
      const [r, n] = ready(p);
      return el('tr', { 'data-pod': p.namespace + '/' + p.name, 'data-stage': p.stage },
        el('td', { text: p.namespace }),
        el('td', null, el('a', { href: `#/pod/${encodeURIComponent(p.namespace)}/${encodeURIComponent(p.name)}`, text: p.name })),
        el('td', null, stage(p.stage)), el('td', { class: 'num', text: `${r}/${n}` }),
        el('td', { class: 'num', text: String(restarts(p)) }), el('td', { class: 'num', title: p.created ? utc(p.created) : null, text: span(now - ms(p.created)) }),
        el('td', { class: 'why', text: why(p) }));
    }));
    if (refocus) {
      const a = document.querySelector(`#pods tbody tr[data-pod="${CSS.escape(refocus)}"] a`);
      if (a) a.focus();
    }
    if (!S.rendered && S.pods.length) {
      S.rendered = true;
      performance.mark('podlife:first-render'); // measured by hack/loadharness -ui
    }
    for (const th of document.querySelectorAll('#pods th')) {
      th.setAttribute('aria-sort', th.dataset.key === S.sort.key ? (S.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
  }
  function fillSelect(sel, values) {
    const have = [...sel.options].slice(1).map((o) => o.value).join('\n');
    if (have === values.join('\n')) return;
    const keep = sel.value;
    sel.replaceChildren(el('option', { value: '', text: 'all' }), ...values.map((v) => el('option', { value: v, text: v })));
    sel.value = values.includes(keep) ? keep : '';
  }

  // ---- the pod page: the timeline ----
  async function loadPod(ns, name, gen) {
    const path = `pods/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
    const [pod, hist] = await Promise.all([getJSON(path), getJSON('transitions')]);
    if (gen !== S.gen) return;
    S.pod = pod;
    S.nodeHistory = hist || [];
    renderPod();
  }
  function lanesOf(pod) {
    const from = { kubelet: 'live status', 'kubelet-cache': "API server's copy", runtime: 'its copy lags the runtime' }[pod.statusFrom];
    return [
      { key: 'runtime', label: 'runtime' },
      { key: 'kubelet', label: 'kubelet' + (from ? ' (' + from + ')' : '') },
      { key: 'apiserver', label: 'API server' },
      { key: 'podlife', label: 'podlife (stage)' },
    ];
  }
  // attemptsOf: each container attempt the history shows, from the
  // runtime's transitions and its current record.
  function attemptsOf(pod) {
    const out = [];
    const seen = new Set();
    const add = (a) => {
      const k = a.container + '@' + Math.round(a.start / 1000);
      if (!seen.has(k)) { seen.add(k); out.push(a); }
    };
    const open = {};
    for (const r of pod.history || []) {
      if (r.kind !== 'ContainerStateChanged' || r.source !== 'runtime') continue;
      const t = ms(r.happenedAt || r.observedAt);
      if (r.to === 'RUNNING') open[r.container] = t;
      else if (r.to === 'EXITED' && open[r.container] != null) {
        add({ container: r.container, start: open[r.container], end: t, exitCode: r.exitCode, reason: r.reason });
        delete open[r.container];
      }
    }
    for (const c of pod.containers || []) {
      const rt = c.runtime;
      if (!rt || !rt.startedAt || isNaN(ms(rt.startedAt))) continue;
      const running = rt.state === 'RUNNING';
      add({ container: c.name, attempt: rt.attempt, start: ms(rt.startedAt), end: running ? NaN : ms(rt.finishedAt),
        exitCode: running ? null : rt.exitCode, reason: rt.reason, running });
    }
    return out.filter((a) => !isNaN(a.start));
  }
  // shadesOf: the periods a source was down, or the kubelet cut off.
  function shadesOf(hist, now) {
    const out = [];
    const down = {};
    for (const r of hist) {
      if (r.pod || (r.kind !== 'SourceDown' && r.kind !== 'SourceUp')) continue;
      const t = ms(r.happenedAt || r.observedAt);
      if (r.kind === 'SourceDown') down[r.source] ??= { t, detail: r.detail };
      else if (down[r.source]) { out.push({ source: r.source, start: down[r.source].t, end: t, detail: down[r.source].detail }); delete down[r.source]; }
    }
    for (const [source, d] of Object.entries(down)) out.push({ source, start: d.t, end: now, open: true, detail: d.detail });
    return out;
  }
  function renderPod() {
    const pod = S.pod;
    if (!pod) return;
    $('#pod-title').textContent = pod.namespace + '/' + pod.name;
    const [r, n] = ready(pod);
    $('#pod-summary').replaceChildren(stage(pod.stage), ` · ready ${r}/${n} · ${restarts(pod)} restarts · phase ${pod.phase || '–'} (from ${pod.statusFrom || '–'}) · `,
      el('span', { class: 'why', text: why(pod) }),
      S.blackBox ? '' : el('div', { class: 'why', text: 'The crash black box is off on this agent: no last lines.' }));
    drawTimeline();
  }
  function domain(items, now) {
    let t0 = Infinity;
    for (const x of items) if (x < t0) t0 = x;
    if (!isFinite(t0)) t0 = now - 5 * 60e3;
    const pad = Math.max((now - t0) * 0.03, 2000);
    return [t0 - pad, now + pad];
  }
  function drawTimeline() {
    const pod = S.pod;
    if (!pod) return;
    const now = Date.now();
    const had = document.activeElement && document.activeElement.closest && document.activeElement.closest('#timeline [tabindex]');
    const refocus = had ? (had.dataset.seq ? `[data-seq="${had.dataset.seq}"]` : `[data-attempt="${CSS.escape(had.dataset.attempt || '')}"]`) : null;
    const lanes = lanesOf(pod);
    const attempts = attemptsOf(pod);
    const marks = (pod.history || []).map((rec) => ({ rec, t: ms(rec.happenedAt || rec.observedAt) })).filter((m) => !isNaN(m.t));
    const shades = shadesOf(S.nodeHistory, now);
    const full = domain([...marks.map((m) => m.t), ...attempts.map((a) => a.start), ...shades.map((s) => s.start)], now);
    S.full = full;
    const [t0, t1] = S.view || full;
    const width = Math.max($('#timeline').clientWidth || 900, 500);
    const left = 190, right = 12, top = 22;
    const containers = [...new Set([...(pod.containers || []).map((c) => c.name), ...attempts.map((a) => a.container)])];
    const rowH = 22;
    const heights = { runtime: Math.max(1, containers.length) * rowH + 8 };
    let y = top;
    for (const l of lanes) { l.y = y; l.h = heights[l.key] || 30; y += l.h + 6; }
    const H = y + 4;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const clampX = (t) => Math.min(Math.max(x(t), left), width - right);
    const g = sv('svg', { viewBox: `0 0 ${width} ${H}`, height: H, role: 'group', 'aria-label': 'Timeline of ' + pod.namespace + '/' + pod.name });
    g.append(axis(t0, t1, x, top, H));
    const laneByKey = {};
    for (const l of lanes) {
      laneByKey[l.key] = l;
      g.append(sv('rect', { class: 'lane-bg', x: left, y: l.y, width: width - left - right, height: l.h }),
        sv('text', { class: 'lane-label', x: 6, y: l.y + 15, text: l.label }));
    }
    for (const s of shades) {
      const target = s.source === 'kubelet-apiserver' ? ['kubelet', 'apiserver'] : [s.source];
      const what = s.source === 'kubelet-apiserver' ? 'kubelet cut off from the API server' : label(s.source) + ' down';
      for (const k of target) {
        const l = laneByKey[k];
        if (!l || s.end < t0 || s.start > t1) continue;
        const x0 = clampX(s.start), x1 = Math.max(clampX(s.end), x0 + 2);
        const tip = `${what}: ${utc(s.start)} – ${s.open ? 'now' : utc(s.end)}${s.detail ? ' (' + s.detail + ')' : ''}`;
        g.append(sv('rect', { class: s.source === 'kubelet-apiserver' ? 'cut' : 'down', x: x0, y: l.y, width: x1 - x0, height: l.h, 'data-shade': s.source },
          sv('title', { text: tip })));
        if (x1 - x0 > 60) g.append(sv('text', { class: 'shade-label', x: x0 + 3, y: l.y + l.h - 4, text: what }));
      }
    }
    const rl = laneByKey.runtime;
    for (const a of attempts) {
      const end = isNaN(a.end) ? now : a.end;
      if (end < t0 || a.start > t1) continue;
      const row = Math.max(0, containers.indexOf(a.container));
      const x0 = clampX(a.start), x1 = Math.max(clampX(end), x0 + 3);
      const cls = a.running ? 'running' : a.exitCode ? 'failed' : 'ok';
      const what = `${a.container}${a.attempt != null ? ' attempt ' + a.attempt : ''}: ${a.running ? 'running' : 'exit ' + a.exitCode + (a.reason ? ' ' + a.reason : '')}`;
      const bar = sv('rect', { class: 'bar ' + cls, x: x0, y: rl.y + 4 + row * rowH, width: x1 - x0, height: rowH - 6, tabindex: 0, role: 'button',
        'aria-label': what, 'data-attempt': a.container + '/' + (a.attempt ?? ''), onclick: () => select({ attempt: a }),
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select({ attempt: a }); } } },
      sv('title', { text: what + ` (${utc(a.start)} – ${isNaN(a.end) ? 'now' : utc(a.end)})` }));
      g.append(bar);
      if (x1 - x0 > 70) g.append(sv('text', { class: 'bar-label', x: x0 + 3, y: rl.y + 4 + row * rowH + 12, text: what }));
    }
    for (const m of marks) {
      if (m.t < t0 || m.t > t1) continue;
      const l = laneByKey[m.rec.source] || laneByKey.podlife;
      const r = m.rec;
      const warn = r.kind === 'StageStuck' || r.kind === 'MismatchAppeared' || r.to === 'Failing' || r.to === 'Unknown' || (r.exitCode != null && r.exitCode !== 0);
      const text = describe(r);
      g.append(sv('circle', { class: 'mark' + (warn ? ' warn' : ''), cx: x(m.t), cy: l.key === 'runtime' ? l.y + l.h - 5 : l.y + l.h / 2, r: 5, tabindex: 0,
        role: 'button', 'aria-label': text, 'data-seq': r.seq, onclick: () => select({ rec: r }),
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select({ rec: r }); } } },
      sv('title', { text: text + ' · ' + utc(m.t) })));
    }
    $('#timeline').replaceChildren(g);
    if (refocus) {
      const again = document.querySelector('#timeline ' + refocus);
      if (again) again.focus();
    }
    $('#legend').replaceChildren(legend('bar ok', 'attempt, exit 0'), legend('bar failed', 'attempt, failed'), legend('bar running', 'attempt, running'),
      legend('down', 'source down'), legend('cut', 'kubelet cut off'), el('span', { text: `shown: ${new Date(t0).toLocaleTimeString()} – ${new Date(t1).toLocaleTimeString()}` }));
  }
  function legend(cls, text) {
    const s = sv('svg', { width: 14, height: 14, 'aria-hidden': 'true' }, sv('rect', { class: cls, x: 0, y: 0, width: 14, height: 14 }));
    return el('span', null, s, ' ' + text);
  }
  function axis(t0, t1, x, top, H) {
    const g = sv('g', { class: 'axis' });
    const steps = [1e3, 5e3, 10e3, 30e3, 60e3, 300e3, 600e3, 1800e3, 3600e3, 6 * 3600e3, 86400e3];
    const step = steps.find((s) => (t1 - t0) / s <= 8) || steps[steps.length - 1];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      g.append(sv('line', { x1: x(t), x2: x(t), y1: top - 4, y2: H }),
        sv('text', { x: x(t) + 2, y: top - 8, text: new Date(t).toLocaleTimeString() }, sv('title', { text: utc(t) })));
    }
    return g;
  }
  function describe(r) {
    const parts = [r.kind];
    if (r.container) parts.push(r.container);
    if (r.source) parts.push('(' + r.source + ')');
    if (r.from || r.to) parts.push((r.from || '∅') + ' → ' + (r.to || '∅'));
    if (r.exitCode != null) parts.push('exit ' + r.exitCode);
    if (r.reason) parts.push(r.reason);
    return parts.join(' ');
  }
  function select(what) {
    S.selected = what;
    const d = $('#detail');
    if (what.rec) {
      const r = what.rec;
      d.replaceChildren(el('h3', { text: 'Transition #' + r.seq }), el('dl', null,
        ...row('What', describe(r)), ...row('Detail', r.detail), ...row('Happened', r.happenedAt ? when(r.happenedAt) : null),
        ...row('Observed by podlife', when(r.observedAt))));
    } else {
      const a = what.attempt;
      const box = el('div', null, el('p', { class: 'why', text: a.running ? 'Running: its last lines are kept when it exits.'
        : S.blackBox ? 'Reading its last lines…' : 'The crash black box is off on this agent: no last lines.' }));
      d.replaceChildren(el('h3', { text: `${a.container}${a.attempt != null ? ', attempt ' + a.attempt : ''}` }), el('dl', null,
        ...row('Started', when(a.start)), ...row('Finished', isNaN(a.end) ? 'running' : when(a.end)),
        ...row('Ran', span((isNaN(a.end) ? Date.now() : a.end) - a.start)),
        ...row('Exit', a.running ? null : String(a.exitCode ?? '–') + (a.reason ? ' ' + a.reason : ''))), box);
      if (S.blackBox && !a.running) showLines(a, box);
    }
    d.focus();
  }
  // showLines reads the attempt's crash black box (who may: get pods/log on
  // the pod) and shows its last lines.
  async function showLines(a, into) {
    const p = S.pod;
    try {
      const r = await getJSON(`pods/${encodeURIComponent(p.namespace)}/${encodeURIComponent(p.name)}/logs?container=${encodeURIComponent(a.container)}`);
      const b = (r.attempts || []).find((b) => (a.attempt != null && b.attempt === a.attempt && b.uid === p.uid) ||
        Math.abs(ms(b.finishedAt) - a.end) < 1000);
      into.replaceChildren(b ? lines(b) : el('p', { class: 'why', text: 'The crash black box has no lines of this attempt (evicted, or it ended before the agent ran).' }));
    } catch (e) {
      into.replaceChildren(el('p', { class: 'why', text: (e.status === 403 ? 'Not allowed to read its last lines: ' : 'Its last lines could not be read: ') + e.message }));
    }
  }
  function row(k, v) { return v == null || v === '' ? [] : [el('dt', { text: k }), el('dd', null, v)]; }
  function lines(b) {
    if (b.captureError) return el('p', { class: 'why', text: 'No lines: ' + b.captureError });
    const pre = el('pre', { 'aria-label': 'Last lines' });
    for (const l of b.lines || []) pre.append(el('span', { class: l.stream, title: l.time ? utc(l.time) + ' ' + l.stream : l.stream, text: l.text + '\n' }));
    return el('div', null, el('h4', { text: `Last lines${b.truncated ? ' (earlier lines not kept)' : ''}` }), pre);
  }

  // ---- zoom and pan ----
  // setView shows v, within the history kept: at most all of it, at
  // least a second.
  function setView(v) {
    if (!S.full || !S.pod) return;
    const [f0, f1] = S.full;
    const w = Math.min(Math.max(v[1] - v[0], 1000), f1 - f0);
    const t0 = Math.min(Math.max(v[0], f0), f1 - w);
    S.view = t0 <= f0 && t0 + w >= f1 ? null : [t0, t0 + w];
    drawTimeline();
  }
  function zoom(f, at) {
    if (!S.full) return;
    const [t0, t1] = S.view || S.full;
    const c = at ?? (t0 + t1) / 2;
    setView([c - (c - t0) * f, c + (t1 - c) * f]);
  }
  function pan(f) {
    if (!S.full) return;
    const [t0, t1] = S.view || S.full;
    const d = (t1 - t0) * f;
    setView([t0 + d, t1 + d]);
  }

  // ---- routes, live updates ----
  function route() {
    const m = location.hash.match(/^#\/pod\/([^/]+)\/([^/]+)$/);
    let ns = null, name = null;
    try {
      if (m) [ns, name] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
    } catch (_) { /* not a pod's address: the node page */ }
    S.route = ns ? { page: 'pod', ns, name } : { page: 'node' };
    S.gen++; // loads begun for another page are dropped
    $('#node-page').hidden = S.route.page !== 'node';
    $('#pod-page').hidden = S.route.page !== 'pod';
    if (S.route.page === 'pod') {
      S.view = null;
      S.pod = null;
      S.full = null;
      S.selected = null;
      $('#timeline').replaceChildren();
      $('#legend').replaceChildren();
      $('#pod-summary').replaceChildren();
      $('#detail').replaceChildren(el('p', { text: 'Select a mark or an attempt (click, or Tab then Enter) to see it here.' }));
      $('#pod-title').textContent = S.route.ns + '/' + S.route.name;
      $('#pod-title').setAttribute('tabindex', '-1');
      $('#pod-title').focus();
      refresh(0);
    } else {
      renderNode();
      $('#pods-title').setAttribute('tabindex', '-1');
      if (document.activeElement && document.activeElement.closest && document.activeElement.closest('#pod-page')) $('#pods-title').focus();
      refresh(0);
    }
  }
  // refresh reads the agent again: at once when the page opens, then at most
  // once per burst of transitions (150 ms).
  let pending = null;
  function refresh(delay = 150) {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      const gen = S.gen;
      try {
        await loadPods(gen);
        if (S.route.page === 'pod') await loadPod(S.route.ns, S.route.name, gen);
        if (gen === S.gen && /^error/.test($('#live').textContent)) setLive('live');
      } catch (e) {
        if (gen !== S.gen) return;
        if (S.route.page === 'pod' && e.status === 404) $('#pod-summary').textContent = 'No such pod on this node: ' + e.message;
        else setLive('error: ' + e.message);
      }
    }, delay);
  }
  function setLive(s) { $('#live').textContent = s; }
  async function watch() {
    for (;;) {
      try {
        const r = await fetch(api('transitions?watch=true'), { cache: 'no-store' });
        if (!r.ok) throw new Error('HTTP ' + r.status);
        setLive('live');
        refresh(0); // what changed while it was not following
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (line) onRecord(JSON.parse(line));
            }
          }
        } finally {
          reader.cancel().catch(() => {});
        }
        setLive('stream ended; reconnecting');
      } catch (e) {
        setLive('disconnected (' + e.message + '); reconnecting');
      }
      await new Promise((res) => setTimeout(res, 2000));
    }
  }
  function onRecord(rec) {
    if (rec.error) return; // a watch that fell behind: the next one starts over
    S.lastSeq = rec.seq;
    document.body.dataset.lastSeq = rec.seq;
    refresh();
  }

  function init() {
    for (const th of document.querySelectorAll('#pods th')) {
      th.querySelector('button').addEventListener('click', () => {
        S.sort = { key: th.dataset.key, dir: S.sort.key === th.dataset.key ? -S.sort.dir : 1 };
        renderNode();
      });
    }
    for (const id of ['#f-ns', '#f-stage', '#f-text']) $(id).addEventListener('input', renderNode);
    $('#zoom-in').addEventListener('click', () => zoom(0.5));
    $('#zoom-out').addEventListener('click', () => zoom(2));
    $('#pan-left').addEventListener('click', () => pan(-0.25));
    $('#pan-right').addEventListener('click', () => pan(0.25));
    $('#fit').addEventListener('click', () => { S.view = null; drawTimeline(); });
    const tl = $('#timeline');
    tl.addEventListener('wheel', (e) => {
      if (!S.full || !S.pod) return;
      e.preventDefault();
      const box = tl.getBoundingClientRect();
      const [t0, t1] = S.view || S.full;
      const frac = Math.min(Math.max((e.clientX - box.left - 190) / (box.width - 202), 0), 1);
      zoom(e.deltaY < 0 ? 0.8 : 1.25, t0 + frac * (t1 - t0));
    }, { passive: false });
    let drag = null;
    tl.addEventListener('pointerdown', (e) => {
      if (!S.full || e.target.closest('.bar, .mark')) return;
      drag = { x: e.clientX, v: S.view || S.full };
      tl.setPointerCapture(e.pointerId);
    });
    for (const ev of ['pointerup', 'pointercancel']) tl.addEventListener(ev, () => { drag = null; });
    tl.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const dt = ((drag.x - e.clientX) / Math.max(tl.clientWidth - 202, 1)) * (drag.v[1] - drag.v[0]);
      setView([drag.v[0] + dt, drag.v[1] + dt]);
    });
    window.addEventListener('hashchange', route);
    window.addEventListener('resize', () => { if (S.route.page === 'pod' && S.pod) drawTimeline(); });
    setInterval(() => { if (S.route.page === 'node') renderNode(); else drawTimeline(); }, 10000); // ages, and 'now'
    route();
    watch();
  }
  init();
})();
