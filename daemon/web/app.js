// vmshiftd's dashboard: plans, their groups and VMs with phase,
// progress, ETA and downtime, alerts, and predicted against actual per
// migration.  Plain JavaScript, no library: the plan states come from
// GET /api/v1/plans/NAME, the live part from the event stream, read
// with fetch () because EventSource cannot send the bearer token.
// Elements carry data-* attributes (data-vm, data-status, data-phase,
// data-progress, data-downtime-ms, ...) for tests and scripts.
// SPDX-License-Identifier: LGPL-2.1-or-later
'use strict';

const TOKEN_KEY = 'vmshiftd-token';
// The plan states are read again this often (ms), besides after each
// VM's or run's end, for what the events do not carry (ledger, ETA).
const REFRESH_MS = 5000;
// The event stream is opened again this long after it ended (ms).
const RETRY_MS = 2000;
// A rate is measured over at least this long (s): events replayed to
// a new client arrive together and say nothing of the rate.
const MIN_RATE_SPAN_S = 0.5;
// Alerts shown, newest first.
const MAX_ALERTS = 200;
// Events that are alerts, and how bad.
const ALERT_EVENTS = {
  'downtime-miss-predicted' : 'warn',
  'deadline-miss-predicted' : 'warn',
  'warning' : 'warn',
  'timeout' : 'bad',
  'memory-retry' : 'warn',
  'mirror-restart' : 'warn',
};

// A job's phases while it moves (lib/vms-job.c), and the plan's word
// for a VM it started.
const ACTIVE = [ 'copying', 'synced', 'migrating' ];

const state = {
  token : null,
  plans : new Map (), // name -> plan state (GET /api/v1/plans/NAME)
  live : new Map (),  // "plan/vm" -> what the events said of the VM
  alerts : [],        // {at, level, plan, vm, event, message}, newest first
  jobs : [],
  renderQueued : false,
  refreshTimer : null,
  refreshes : 0, // reads of the plans started
  stream : null, // the AbortController of the event stream
};

const $ = (id) => document.getElementById(id);

function el (tag, attributes, ...children)
{
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {}))
    if (value !== undefined && value !== null)
      node.setAttribute(name, String (value));
  for (const child of children)
    if (child !== undefined && child !== null)
      node.append(child instanceof Node ? child : String (child));
  return node;
}

function svg (tag, attributes, text)
{
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes || {}))
    node.setAttribute(name, String (value));
  if (text !== undefined)
    node.textContent = text;
  return node;
}

// ---- formatting ----

function formatBytes (bytes)
{
  const units = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1)
    {
      value /= 1024;
      unit++;
    }
  return (unit ? value.toFixed(1) : String (value)) + ' ' + units[unit];
}

function formatSeconds (seconds)
{
  if (seconds === undefined || seconds === null || !isFinite (seconds))
    return '';
  seconds = Math.round(seconds);
  if (seconds < 60)
    return seconds + ' s';
  if (seconds < 3600)
    return Math.floor(seconds / 60) + ' min ' + (seconds % 60) + ' s';
  return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60)
         + ' min';
}

function clock (date) { return date.toTimeString().slice(0, 8); }

// ---- the API ----

class Unauthorized extends Error
{
}

async function api (path)
{
  const response = await fetch ('/api/v1' + path, {
    headers : { Authorization : 'Bearer ' + state.token },
    cache : 'no-store',
  });
  if (response.status === 401)
    throw new Unauthorized ('vmshiftd refused the token');
  const body = await response.json().catch(() => ({}));
  if (!response.ok)
    throw new Error (body.error || response.status + ' ' + response.statusText);
  return body;
}

async function refresh ()
{
  // Reads overlap when events come fast: only the last one started is
  // shown, so that an older answer never replaces a newer.
  const generation = ++state.refreshes;
  try
    {
      const list = await api ('/plans');
      const names = (list.plans || []).map((plan) => plan.name);
      const states = await Promise.all(
          names.map((name) => api ('/plans/' + encodeURIComponent (name))));
      const jobs = (await api ('/jobs')).jobs || [];
      if (generation !== state.refreshes)
        return;
      state.plans = new Map (names.map((name, i) => [name, states[i]]));
      state.jobs = jobs;
    }
  catch (error)
    {
      if (error instanceof Unauthorized)
        return logout (error.message);
      addAlert (
          { level : 'bad', event : 'dashboard', message : error.message });
    }
  queueRender ();
}

function scheduleRefresh ()
{
  clearTimeout (state.refreshTimer);
  state.refreshTimer = setTimeout (async () => {
    await refresh ();
    if (state.token)
      scheduleRefresh ();
  }, REFRESH_MS);
}

// ---- the event stream ----

// Server-sent events from a byte stream: frames end with a blank line;
// "event:" names one, "data:" lines hold its JSON, ":" lines are
// comments.
function* parseFrames (buffer)
{
  let end;
  while ((end = buffer.text.search(/\r?\n\r?\n/)) >= 0)
    {
      const frame = buffer.text.slice(0, end);
      buffer.text = buffer.text.slice(end).replace(/^\r?\n\r?\n/, '');
      let name = 'message';
      const data = [];
      for (const line of frame.split(/\r?\n/))
        {
          if (line.startsWith(':'))
            continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value
              = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event')
            name = value;
          else if (field === 'data')
            data.push(value);
        }
      if (data.length)
        yield { name, data : data.join('\n') };
    }
}

async function readEvents (signal)
{
  const response = await fetch ('/api/v1/events', {
    headers : { Authorization : 'Bearer ' + state.token },
    cache : 'no-store',
    signal,
  });
  if (response.status === 401)
    throw new Unauthorized ('vmshiftd refused the token');
  if (!response.ok || !response.body)
    throw new Error ('the event stream: ' + response.status);
  setConnection ('live', 'live');
  // vmshiftd replays the events it kept first: what they said is
  // rebuilt from them.
  state.live = new Map ();
  state.alerts = [];
  const reader = response.body.getReader();
  const decoder = new TextDecoder ();
  const buffer = { text : '' };
  for (;;)
    {
      const { value, done } = await reader.read();
      if (done)
        return;
      buffer.text += decoder.decode(value, { stream : true });
      for (const frame of parseFrames (buffer))
        {
          let event;
          try
            {
              event = JSON.parse(frame.data);
            }
          catch (error)
            {
              continue; // not ours to show
            }
          onEvent (frame.name, event);
        }
    }
}

async function followEvents ()
{
  const controller = new AbortController ();
  state.stream = controller;
  while (!controller.signal.aborted)
    {
      try
        {
          await readEvents (controller.signal);
        }
      catch (error)
        {
          if (controller.signal.aborted)
            return;
          if (error instanceof Unauthorized)
            return logout (error.message);
        }
      setConnection ('retrying', 'reconnecting to the event stream');
      await new Promise ((resolve) => setTimeout (resolve, RETRY_MS));
    }
}

function setConnection (mode, text)
{
  const node = $ ('connection');
  node.dataset.state = mode;
  node.textContent = text;
}

// ---- what the events say ----

function liveOf (plan, vm)
{
  const key = plan + '/' + vm;
  if (!state.live.has(key))
    state.live.set(key, {});
  return state.live.get(key);
}

// The pass's progress, with a rate measured between updates far enough
// apart, and the ETA of the pass at that rate.
function noteProgress (live, event)
{
  const now = performance.now() / 1000;
  const pass = (event.disk || '') + '/' + (event.phase || '');
  const done = Number (event.done) || 0, total = Number (event.total) || 0;
  const last = live.rateBase;
  if (!last || last.pass !== pass || done < last.done)
    {
      live.rateBase = { pass, done, at : now };
      live.rate = undefined;
    }
  else if (now - last.at >= MIN_RATE_SPAN_S)
    {
      const rate = (done - last.done) / (now - last.at);
      live.rate = live.rate === undefined ? rate : 0.5 * live.rate + 0.5 * rate;
      live.rateBase = { pass, done, at : now };
    }
  live.progress = { disk : event.disk, phase : event.phase, done, total };
  // With what the job sends after this pass (vmshift's estimate, when
  // it has one), the whole job's time left, as its overall-eta.
  const left = total - done + (Number (event.after) || 0);
  live.eta = live.rate > 0 ? left / live.rate : undefined;
}

function onEvent (name, event)
{
  const plan = event.plan, vm = event.vm;
  const live = plan && vm ? liveOf (plan, vm) : null;
  if (live)
    switch (name)
      {
      case 'plan-vm-start':
        // A new attempt: what the last one measured no longer holds.
        for (const key of Object.keys(live))
          delete live[key];
        live.status = 'migrating';
        break;
      case 'progress':
        noteProgress (live, event);
        break;
      case 'state':
        live.phase = event.state;
        break;
      case 'migrated':
        live.migrated = event;
        break;
      case 'downtime-miss-predicted':
        live.predictedMissMs
            = Math.max(live.predictedMissMs || 0, event['predicted-ms'] || 0);
        break;
      case 'plan-vm':
        live.status
            = event.outcome === 'migrated-earlier' ? 'migrated' : event.outcome;
        live.eta = undefined;
        break;
      }
  noteAlert (name, event);
  // The plan's state (its running, its jobs, the ledger) changes at
  // these: read it again.
  if ([
        'plan-vm-start', 'state', 'plan-vm', 'plan-group', 'plan-done',
        'plan-run-ended'
      ].includes(name))
    refresh ();
  queueRender ();
}

function noteAlert (name, event)
{
  let level = ALERT_EVENTS[name];
  if (name === 'plan-vm' && event.outcome === 'failed')
    level = 'bad';
  else if (name === 'plan-group' && event.outcome !== 'migrated')
    level = 'bad';
  else if (name === 'plan-run-ended' && !event.ok)
    level = 'bad';
  else if (name === 'migrated' && event['max-downtime-ms'] > 0
           && event['downtime-ms'] > event['max-downtime-ms'])
    level = 'bad';
  if (!level)
    return;
  addAlert ({
    level,
    plan : event.plan,
    vm : event.vm,
    event : name,
    message : event.message || event.error || '',
  });
}

function addAlert (alert)
{
  alert.at = new Date ();
  state.alerts.unshift(alert);
  state.alerts.length = Math.min(state.alerts.length, MAX_ALERTS);
}

// ---- rendering ----

function queueRender ()
{
  if (state.renderQueued)
    return;
  state.renderQueued = true;
  requestAnimationFrame (() => {
    state.renderQueued = false;
    render ();
  });
}

function render ()
{
  renderAlerts ();
  renderPlans ();
  renderChart ();
  renderJobs ();
}

function renderAlerts ()
{
  const list = $ ('alerts');
  list.dataset.count = state.alerts.length;
  list.replaceChildren(
      ...(state.alerts.length ? state.alerts.map(
              (alert) => el (
                  'li', {
                    class : alert.level,
                    'data-event' : alert.event,
                    'data-plan' : alert.plan,
                    'data-vm' : alert.vm
                  },
                  el ('time', {}, clock (alert.at)),
                  [ alert.plan, alert.vm ].filter(Boolean).join(' / ')
                      + (alert.plan || alert.vm ? ': ' : '') + alert.event
                      + (alert.message ? ' \u2014 ' + alert.message : '')))
                              : [ el ('li', { class : 'none' }, 'None.') ]));
}

// A VM as shown: its job's state (from the plan state) overlaid with
// what the events said since.
function vmView (planName, status)
{
  const live = state.live.get(planName + '/' + status.vm) || {};
  const view = {
    name : status.vm,
    group : status.group || '',
    status : status.status,
    phase : status.state || status.status,
    downtimeMs : status['downtime-ms'],
    maxDowntimeMs : status['max-downtime-ms'],
    seconds : status.seconds,
    estimatedSeconds : status['estimated-seconds'],
    // The estimate's prediction, else the miss foreseen before the
    // switchover.
    predictedDowntimeMs : status['estimated-downtime-ms'] !== undefined
                              ? status['estimated-downtime-ms']
                              : status['predicted-downtime-ms'],
    eta : status['copy-eta-s'],
    error : status.error,
    done : status['sent-bytes'] || 0,
    total : status['disk-bytes'] || 0,
    pass : 'disks sent',
  };
  // The plan state is read every few seconds, the events are newer;
  // but a job migrated stays so (events replayed may be older).
  if (live.predictedMissMs && view.predictedDowntimeMs === undefined)
    view.predictedDowntimeMs = live.predictedMissMs;
  if (live.status
      && !(live.status === 'migrating' && status.status === 'migrated'))
    view.status = live.status;
  const running = ACTIVE.includes(view.status);
  if (live.phase && running)
    view.phase = live.phase;
  if (live.progress && running)
    {
      view.done = live.progress.done;
      view.total = live.progress.total;
      view.pass = [ live.progress.disk, live.progress.phase ].join(' ');
      view.eta = live.eta;
    }
  if (view.status === 'migrated')
    {
      view.phase = 'done';
      view.eta = undefined;
      if (view.total)
        view.done = view.total;
    }
  const migrated = live.migrated;
  if (migrated)
    {
      view.downtimeMs = migrated['downtime-ms'];
      view.maxDowntimeMs = migrated['max-downtime-ms'];
      view.seconds = migrated.seconds;
      if (migrated['predicted-seconds'] !== undefined)
        {
          view.estimatedSeconds = migrated['predicted-seconds'];
          view.predictedDowntimeMs = migrated['predicted-downtime-ms'];
        }
    }
  if (view.downtimeMs !== undefined && view.downtimeMs < 0)
    view.downtimeMs = undefined;
  view.percent = view.total > 0 ? Math.min(100, 100 * view.done / view.total)
                                : (view.status === 'migrated' ? 100 : 0);
  return view;
}

function progressBar (view)
{
  const fill = el ('div', { class : 'fill' });
  fill.style.width = view.percent.toFixed(1) + '%';
  return el ('div', { class : 'bar', title : view.pass }, fill);
}

function progressText (view)
{
  // Nothing to copy yet (not started): no figures to give.
  if (!view.total)
    return '';
  return formatBytes (view.done) + ' / ' + formatBytes (view.total) + ' ('
         + Math.floor(view.percent) + '%) \u00b7 ' + view.pass;
}

function downtimeCell (view)
{
  if (view.downtimeMs === undefined)
    return el ('td', { class : 'number downtime' });
  const over = view.maxDowntimeMs > 0 && view.downtimeMs > view.maxDowntimeMs;
  return el (
      'td', { class : 'number downtime' + (over ? ' over' : '') },
      view.downtimeMs + ' ms'
          + (view.maxDowntimeMs > 0 ? ' / ' + view.maxDowntimeMs + ' ms' : ''));
}

function vmRow (planName, view)
{
  return el (
      'tr', {
        'data-vm' : view.name,
        'data-plan' : planName,
        'data-status' : view.status,
        'data-phase' : view.phase,
        'data-progress' : view.percent.toFixed(1),
        'data-done' : view.done,
        'data-total' : view.total,
        'data-downtime-ms' : view.downtimeMs,
        'data-seconds' : view.seconds,
        'data-max-downtime-ms' : view.maxDowntimeMs,
      },
      el ('td', {}, view.name), el ('td', {}, view.group),
      el ('td', { class : 'status', title : view.error || '' }, view.status),
      el ('td', { class : 'phase' }, view.phase),
      el ('td', {}, progressBar (view), el ('small', {}, progressText (view))),
      el ('td', { class : 'number eta' }, formatSeconds (view.eta)),
      el ('td', { class : 'number' },
          view.seconds === undefined ? '' : view.seconds.toFixed(1) + ' s'),
      downtimeCell (view));
}

function groupsTable (plan)
{
  if (!plan.groups || !plan.groups.length)
    return null;
  const rows = plan.groups.map(
      (group) => el (
          'tr', { 'data-group' : group.group, 'data-outcome' : group.outcome },
          el ('td', {}, group.group),
          el ('td', {}, (group.members || []).join(', ')),
          el ('td', { class : 'number' },
              group.migrated + ' / ' + (group.members || []).length),
          el ('td', {}, group.outcome || ''),
          el ('td', { class : 'number' },
              group['group-downtime-ms'] === undefined
                  ? ''
                  : group['group-downtime-ms'] + ' ms'),
          el ('td', { class : 'number' },
              group['max-downtime-ms'] ? group['max-downtime-ms'] + ' ms'
                                       : '')));
  return el (
      'table', { class : 'groups' },
      el ('thead', {},
          el ('tr', {}, el ('th', {}, 'Group'), el ('th', {}, 'Members'),
              el ('th', {}, 'Migrated'), el ('th', {}, 'Outcome'),
              el ('th', {}, 'Group downtime'), el ('th', {}, 'Objective'))),
      el ('tbody', {}, ...rows));
}

function planSection (name, plan)
{
  const views = (plan.vms || []).map((status) => vmView (name, status));
  const migrated = views.filter((view) => view.status === 'migrated').length;
  const summary = [
    migrated + ' of ' + views.length + ' VMs migrated',
    plan.running ? 'running' : 'not running',
  ];
  if (plan['eta-s'] !== undefined && plan.running)
    summary.push('plan ETA ' + formatSeconds (plan['eta-s']));
  if (plan['last-error'])
    summary.push('last run: ' + plan['last-error']);
  return el ('div', {
    class : 'plan',
    'data-plan' : name,
    'data-running' : !!plan.running,
    'data-migrated' : migrated,
    'data-eta-s' : plan['eta-s']
  },
             el ('h3', {}, name),
             el ('p', { class : 'summary' }, summary.join(' \u00b7 ')),
             groupsTable (plan),
             el ('table', { class : 'vms' },
                 el ('thead', {},
                     el ('tr', {}, el ('th', {}, 'VM'), el ('th', {}, 'Group'),
                         el ('th', {}, 'Status'), el ('th', {}, 'Phase'),
                         el ('th', {}, 'Progress'), el ('th', {}, 'ETA'),
                         el ('th', {}, 'Time'), el ('th', {}, 'Downtime'))),
                 el ('tbody', {}, ...views.map((view) => vmRow (name, view)))));
}

function renderPlans ()
{
  const sections =
      [...state.plans ].map(([ name, plan ]) => planSection (name, plan));
  $ ('plans').replaceChildren(...(sections.length ? sections : [ el (
                                      'p', { class : 'none' }, 'No plans.') ]));
}

// ---- the chart: predicted against actual, per migration ----

const CHART = {
  label : 150, // px for the VM's name
  width : 360, // px for the bars of one measure
  gap : 40,    // px between the two measures
  bar : 9,     // px per bar
  row : 30,    // px per VM
  top : 34,    // px above the first row (titles, legend)
};

// The migrations that have something to compare: an actual time or
// downtime, or a prediction of one.
function migrations ()
{
  const rows = [];
  for (const [name, plan] of state.plans)
    for (const status of plan.vms || [])
      {
        const view = vmView (name, status);
        if (view.seconds !== undefined || view.downtimeMs !== undefined)
          rows.push({ plan : name, ...view });
      }
  return rows;
}

function chartScale (rows, predicted, actual, extra)
{
  let max = 0;
  for (const row of rows)
    max = Math.max(max, row[predicted] || 0, row[actual] || 0,
                   (extra && row[extra]) || 0);
  return max > 0 ? max * 1.1 : 1;
}

// One measure's bars, at x: predicted (grey) over actual (blue, red
// past the objective).
function drawMeasure (chart, rows, x, measure)
{
  const scale
      = chartScale (rows, measure.predicted, measure.actual, measure.objective);
  const width = (value) => Math.max(1, CHART.width * value / scale);
  chart.append(svg ('text', { x, y : 14 }, measure.title));
  chart.append(svg ('line', {
    x1 : x,
    x2 : x,
    y1 : CHART.top - 6,
    y2 : CHART.top + rows.length * CHART.row,
    class : 'axis'
  }));
  rows.forEach((row, i) => {
    const y = CHART.top + i * CHART.row;
    const predicted = row[measure.predicted], actual = row[measure.actual];
    const objective = measure.objective ? row[measure.objective] : 0;
    if (predicted !== undefined && predicted >= 0)
      {
        chart.append(svg ('rect', {
          x,
          y,
          width : width (predicted),
          height : CHART.bar,
          class : 'predicted'
        }));
        chart.append(
            svg ('text',
                 { x : x + width (predicted) + 4, y : y + 8, class : 'muted' },
                 measure.format(predicted)));
      }
    else
      {
        // Clear of the objective's mark.
        const left = x + (objective > 0 ? width (objective) : 0) + 4;
        chart.append(svg ('text', { x : left, y : y + 8, class : 'muted' },
                          'no prediction'));
      }
    if (actual !== undefined && actual >= 0)
      {
        const over = objective > 0 && actual > objective;
        chart.append(svg ('rect', {
          x,
          y : y + CHART.bar + 2,
          width : width (actual),
          height : CHART.bar,
          class : 'actual' + (over ? ' over' : ''),
          'data-vm' : row.name,
          'data-measure' : measure.name,
          'data-value' : actual
        }));
        chart.append(svg (
            'text', { x : x + width (actual) + 4, y : y + 2 * CHART.bar + 1 },
            measure.format(actual)));
      }
    if (objective > 0)
      chart.append(svg ('line', {
        x1 : x + width (objective),
        x2 : x + width (objective),
        y1 : y - 2,
        y2 : y + 2 * CHART.bar + 4,
        class : 'objective'
      }));
  });
}

function renderChart ()
{
  const rows = migrations ();
  const box = $ ('chart');
  if (!rows.length)
    {
      box.replaceChildren(
          el ('p', { class : 'none' }, 'No migration has ended.'));
      return;
    }
  const width = CHART.label + 2 * CHART.width + CHART.gap + 60;
  const height = CHART.top + rows.length * CHART.row + 24;
  const chart = svg ('svg', {
    width,
    height,
    viewBox : `0 0 ${width} ${height}`,
    role : 'img',
    'data-migrations' : rows.length
  });
  chart.append(svg ('title', {}, 'Predicted against actual time and downtime'));
  rows.forEach(
      (row, i) => chart.append(
          svg ('text', { x : 0, y : CHART.top + i * CHART.row + CHART.bar + 4 },
               row.plan + ' / ' + row.name)));
  drawMeasure (chart, rows, CHART.label, {
    name : 'seconds',
    title : 'Time',
    predicted : 'estimatedSeconds',
    actual : 'seconds',
    format : (value) => value.toFixed(1) + ' s'
  });
  drawMeasure (chart, rows, CHART.label + CHART.width + CHART.gap, {
    name : 'downtime-ms',
    title : 'Downtime',
    predicted : 'predictedDowntimeMs',
    actual : 'downtimeMs',
    objective : 'maxDowntimeMs',
    format : (value) => Math.round(value) + ' ms'
  });
  const legendY = height - 8;
  chart.append(svg ('rect', {
    x : CHART.label,
    y : legendY - 9,
    width : 12,
    height : 9,
    class : 'predicted'
  }));
  chart.append(svg ('text', { x : CHART.label + 16, y : legendY },
                    'predicted (the estimate, or a miss foreseen)'));
  chart.append(svg ('rect', {
    x : CHART.label + 300,
    y : legendY - 9,
    width : 12,
    height : 9,
    class : 'actual'
  }));
  chart.append(svg ('text', { x : CHART.label + 316, y : legendY }, 'actual'));
  chart.append(svg ('line', {
    x1 : CHART.label + 380,
    x2 : CHART.label + 392,
    y1 : legendY - 4,
    y2 : legendY - 4,
    class : 'objective'
  }));
  chart.append(svg ('text', { x : CHART.label + 396, y : legendY },
                    'downtime objective'));
  box.replaceChildren(chart);
}

function renderJobs ()
{
  $ ('jobs').tBodies[0].replaceChildren(...state.jobs.map(
      (job) => el (
          'tr', { 'data-job' : job.id, 'data-phase' : job.phase },
          el ('td', {}, job.id), el ('td', {}, job['vm-name'] || ''),
          el ('td', {}, job.phase),
          el ('td', {},
              job.updated ? clock (new Date (job.updated * 1000)) : ''))));
}

// ---- the token ----

function showLogin (message)
{
  $ ('dashboard').hidden = true;
  $ ('logout').hidden = true;
  $ ('login').hidden = false;
  $ ('login-error').hidden = !message;
  $ ('login-error').textContent = message || '';
  setConnection ('off', 'not connected');
  $ ('token').focus();
}

function logout (message)
{
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  clearTimeout (state.refreshTimer);
  if (state.stream)
    state.stream.abort();
  state.stream = null;
  showLogin (message);
}

async function start (token)
{
  state.token = token;
  try
    {
      await api ('/plans');
    }
  catch (error)
    {
      return logout (error.message);
    }
  sessionStorage.setItem(TOKEN_KEY, token);
  $ ('login').hidden = true;
  $ ('dashboard').hidden = false;
  $ ('logout').hidden = false;
  await refresh ();
  scheduleRefresh ();
  followEvents ();
}

document.addEventListener('DOMContentLoaded', () => {
  $ ('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $ ('token').value.trim();
    $ ('token').value = '';
    if (token)
      start (token);
  });
  $ ('logout').addEventListener('click', () => logout ());
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token)
    start (token);
  else
    showLogin ();
});
