// Course dashboard page: sign-in, batch summary, report download with live notifications.
import { HubClient, compareEventIds, decodeJwt, hubRequest, userIdFromToken } from './hub-client.js';

const BASE_URL = ''; // the hub serves this page, so every call is same-origin
const TOKEN_KEY = 'hub:token';
const SESSION_KEY = 'hub:sid';
const DEVICE_KEY = 'hub:did';
const TELEMETRY_KEY = 'hub:telemetry:queue';
const TELEMETRY_QUEUE_LIMIT = 200;
const TELEMETRY_WAIT_MS = 1500; // telemetry goes first, but a slow telemetry call must not hold the report
const TOAST_MS = 10000;
const TOAST_LIMIT = { phone: 3, wide: 5 };
const PAGE_ID = 'course-dashboard';
// The portal's on-demand reports send a report request's click in this shape (env, Course and Batch
// cdata, pageid); ours matches it, so DIKSHA's dashboards count a click here like one there.
const PORTAL_REPORTS = { env: 'reports', pageid: 'on-demand-reports', dataset: 'progress-exhaust' };

const JOB_STATUS = {
  SUBMITTED: 'Queued',
  PROCESSING: 'In progress',
  SUCCESS: 'Ready',
  FAILED: 'Failed',
};

// Sunbird course batches carry a numeric status.
const BATCH_STATUS = { 0: 'Upcoming', 1: 'Ongoing', 2: 'Expired' };

const state = {
  token: null,
  userId: null,
  client: null,
  batches: [],
  batchId: null,
  jobsRefresh: null,
  finishedJobs: new Set(), // a fast job's "completed" event can beat the 202 answer that started it
};

const $ = (id) => document.getElementById(id);

// ---- small helpers -------------------------------------------------------------------------------

/** Builds an element; attributes with null/undefined/false values are left out. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...[].concat(...children).filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** Empties an element and puts `children` in it (`replaceChildren` is newer than Android WebView 61). */
function fill(element, ...children) {
  element.textContent = '';
  element.append(...children);
}

/** crypto.randomUUID exists only in secure contexts; a phone testing against a LAN address is not one. */
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function storageGet(storage, key) {
  try {
    return storage.getItem(key);
  } catch (error) {
    return null;
  }
}

function storageSet(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
  } catch (error) {
    // Storage may be full or disabled; the page still works for this visit.
  }
}

function storedId(storage, key) {
  let id = storageGet(storage, key);
  if (!id) {
    id = uuid();
    storageSet(storage, key, id);
  }
  return id;
}

const numberFormat = new Intl.NumberFormat();
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

function formatCount(value) {
  return Number.isFinite(value) ? numberFormat.format(value) : '–';
}

function formatDate(value, format = dateTimeFormat) {
  const date = value ? new Date(value) : null;
  return date && !Number.isNaN(date.getTime()) ? format.format(date) : value || '';
}

function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '';
  const units = ['B', 'KB', 'MB', 'GB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit ? value.toFixed(1) : value}\u00a0${units[unit]}`; // "33.4 KB" never splits across lines
}

/** Only web links may become hrefs: a javascript: URL in data must never be clickable. */
function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch (error) {
    return null;
  }
}

function currentBatch() {
  return state.batches.find((batch) => batch.batchId === state.batchId) || null;
}

// ---- API -----------------------------------------------------------------------------------------

async function api(path, options) {
  try {
    return await hubRequest(BASE_URL, state.token, path, options);
  } catch (error) {
    if (error.status === 401) signOut(error.message || 'Your session has expired. Please sign in again.');
    throw error;
  }
}

/** Tells the person what went wrong, except for 401, which already sent them back to sign-in. */
function reportError(error) {
  if (error.status !== 401) showToast({ type: 'error', message: error.message, alert: true });
}

// ---- sign-in -------------------------------------------------------------------------------------

/** A token in the fragment never reaches a server log; take it and wipe it from the address bar. */
function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (!token) return null;
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  return token;
}

/** Returns an error sentence, or null when the token can be used. */
function tokenProblem(token) {
  const claims = decodeJwt(token);
  if (!claims) return 'This is not an access token. Paste the whole JWT (three parts separated by dots).';
  if (!claims.sub) return 'This token does not name a user (no "sub" claim).';
  if (Number.isFinite(claims.exp) && claims.exp * 1000 <= Date.now()) return 'This token has expired. Please get a new one.';
  return null;
}

function showSignInError(message) {
  const error = $('token-error');
  error.textContent = message || '';
  error.hidden = !message;
  $('token-input').setAttribute('aria-invalid', message ? 'true' : 'false');
}

function onSignInSubmit(event) {
  event.preventDefault();
  const token = $('token-input').value.trim();
  const problem = tokenProblem(token);
  showSignInError(problem);
  if (problem) {
    $('token-input').focus();
    return;
  }
  $('token-input').value = '';
  signIn(token);
}

function signIn(token) {
  storageSet(sessionStorage, TOKEN_KEY, token);
  state.token = token;
  state.userId = userIdFromToken(token);
  $('signin-message').hidden = true;
  $('signin').hidden = true;
  $('dashboard').hidden = false;
  $('session').hidden = false;
  $('user-id').textContent = state.userId;
  startClient();
  flushTelemetry();
  loadBatches();
}

function signOut(message) {
  if (state.client) state.client.stop();
  state.client = null;
  storageSet(sessionStorage, TOKEN_KEY, null);
  Object.assign(state, { token: null, userId: null, batches: [], batchId: null, finishedJobs: new Set() });
  clearTimeout(state.jobsRefresh);
  $('dashboard').hidden = true;
  $('session').hidden = true;
  $('batch-details').hidden = true;
  $('signin').hidden = false;
  fill($('toasts'));
  resetProgress();
  const notice = $('signin-message');
  notice.textContent = message || '';
  notice.hidden = !message;
  $('token-input').focus();
}

// ---- live notifications --------------------------------------------------------------------------

function startClient() {
  // The hub served the page in the mentor's language; its events come in the same one.
  const client = new HubClient({ baseUrl: BASE_URL, getToken: () => state.token, lang: document.documentElement.lang });
  client.addEventListener('event', (event) => onHubEvent(event.detail));
  client.addEventListener('resync', refreshBatchState);
  client.addEventListener('status', () => renderConnection(client));
  client.addEventListener('unauthorized', (event) =>
    signOut((event.detail && event.detail.message) || 'Your session has expired. Please sign in again.'),
  );
  state.client = client;
  client.start();
}

function renderConnection(client) {
  const labels = { open: 'Live', connecting: 'Connecting…', closed: 'Reconnecting…', offline: 'Offline', paused: 'Paused' };
  const via = { ws: '', sse: ' (stream)', poll: ' (polling)' };
  const status = $('connection-status');
  status.dataset.state = client.state;
  status.dataset.transport = client.transport;
  $('connection-text').textContent = labels[client.state] + (client.state === 'open' ? via[client.transport] : '');
}

function onHubEvent(event) {
  const forThisBatch = event.batchId === state.batchId;
  switch (event.type) {
    case 'report.progress':
      if (forThisBatch) showProgress(event.jobId, event.percent, event);
      return;
    case 'report.submitted':
      showEventToast(event);
      if (forThisBatch) showProgress(event.jobId, 0);
      break;
    case 'report.completed':
    case 'report.failed':
      // A job ends once for the mentor, whatever the log holds (say a completion and a failure, or an
      // ending stored again after a Redis failover): the first ending shown stays, unless support
      // pushed it again on purpose.
      if (state.finishedJobs.has(event.jobId) && !event.replayed) return;
      state.finishedJobs.add(event.jobId);
      showEventToast(event);
      if (forThisBatch) resetProgress();
      break;
    case 'report.duplicate':
      showEventToast(event);
      return;
    default:
      return; // a newer hub may send types this page does not know yet
  }
  if (forThisBatch) scheduleJobsRefresh();
}

/** After a resync or a long absence, what we showed may be stale: read it again. */
function refreshBatchState() {
  if (!state.batchId) return;
  loadDashboard(state.batchId);
  scheduleJobsRefresh();
}

// ---- toasts --------------------------------------------------------------------------------------

function showEventToast(event) {
  const failed = event.type === 'report.failed';
  showToast({
    type: event.type,
    id: event.id,
    jobId: event.jobId,
    key: toastKey(event),
    message: event.message || defaultMessage(event.type),
    context: batchLabel(event.batchId),
    ref: event.ref,
    link: event.type === 'report.completed' ? saveLink(event) : null,
    alert: failed,
    sticky: event.type === 'report.completed',
  });
}

/** Toasts with one key are one story: the newest event about it replaces the older toast. */
function toastKey({ type, jobId }) {
  if (!jobId) return null;
  // The 409 answer and the report.duplicate event describe the same click: show one toast.
  if (type === 'report.duplicate') return `duplicate:${jobId}`;
  // "Ready" or "failed" makes "started" stale; on a phone both would cover half the screen.
  return `job:${jobId}`;
}

function defaultMessage(type) {
  return {
    'report.submitted': 'Your download has started. You can continue using the app.',
    'report.completed': 'Your download is ready.',
    'report.failed': 'Download has failed. Please try again after sometime',
    'report.duplicate': 'Download in-progress. Please try after sometime',
  }[type];
}

function batchLabel(batchId) {
  const batch = state.batches.find((b) => b.batchId === batchId);
  return batch ? [batch.courseName, batch.name].filter(Boolean).join(' · ') : null;
}

function saveLink({ downloadUrl, fileName, jobId, expiresAt }) {
  const href = safeUrl(downloadUrl);
  if (!href) return null;
  return h(
    'a',
    { class: 'button button--small', href, download: fileName || true, 'data-job-id': jobId, 'data-expires-at': expiresAt },
    'Save file',
  );
}

function showToast({ type, id, jobId, key, message, context, ref, link, alert = false, sticky = false }) {
  const region = $('toasts');
  const toast = h(
    'div',
    {
      class: `toast toast--${type.replace(/^report\./, '')}`,
      role: alert ? 'alert' : null,
      'data-event-type': type,
      'data-event-id': id,
      'data-job-id': jobId,
      'data-toast-key': key,
    },
    h('div', { class: 'toast__body' }, h('p', { class: 'toast__message' }, message), context && h('p', { class: 'toast__context' }, context),
      ref && h('p', { class: 'toast__ref' }, 'Reference ', h('span', { class: 'toast__ref-code' }, ref))),
    link && h('div', { class: 'toast__actions' }, link),
    h('button', { type: 'button', class: 'toast__close', 'aria-label': 'Dismiss notification', onclick: () => dismissToast(toast) }, '×'),
  );
  const existing = key ? [...region.children].find((el) => el.dataset.toastKey === key) : null;
  if (existing && !supersedes(id, existing.dataset.eventId)) return;
  if (existing) replaceToast(existing, toast);
  else region.append(toast);
  trimToasts(region);
  if (!sticky) autoDismiss(toast);
}

/**
 * An event's toast supersedes the HTTP answer's toast for the same thing, never the other way round;
 * between events the newer wins, so a "started" relayed late by another tab cannot hide "ready".
 */
function supersedes(id, existingId) {
  if (!existingId) return true;
  return Boolean(id) && compareEventIds(id, existingId) > 0;
}

/** A keyboard user inside the old toast stays in the new one instead of falling back to the page top. */
function replaceToast(old, toast) {
  const hadFocus = old.contains(document.activeElement);
  old.replaceWith(toast);
  if (hadFocus) toast.querySelector('.toast__close').focus();
}

/** A small screen holds few toasts: the oldest go first, ones with a file link last (the list has it too). */
function trimToasts(region) {
  const limit = matchMedia('(max-width: 480px)').matches ? TOAST_LIMIT.phone : TOAST_LIMIT.wide;
  while (region.children.length > limit) {
    const transient = [...region.children].find((el) => el.dataset.eventType !== 'report.completed');
    (transient || region.firstElementChild).remove();
  }
}

/** Toasts float over the page bottom; reserving that much space lets everything be scrolled clear of them. */
function reserveToastSpace() {
  const region = $('toasts');
  if (typeof ResizeObserver !== 'function') return; // Android WebView before 64: the toasts may cover the end
  new ResizeObserver(() => {
    document.body.style.setProperty('--toast-space', `${region.offsetHeight}px`);
  }).observe(region);
}

/** Dismisses after a while, but never under the pointer or keyboard focus (people need time to read). */
function autoDismiss(toast) {
  let timer = setTimeout(() => dismissToast(toast), TOAST_MS);
  const pause = () => clearTimeout(timer);
  const resume = () => {
    clearTimeout(timer);
    timer = setTimeout(() => dismissToast(toast), TOAST_MS / 2);
  };
  toast.addEventListener('mouseenter', pause);
  toast.addEventListener('focusin', pause);
  toast.addEventListener('mouseleave', resume);
  toast.addEventListener('focusout', resume);
}

function dismissToast(toast) {
  if (!toast.isConnected) return;
  const hadFocus = toast.contains(document.activeElement);
  toast.remove();
  if (hadFocus) ($('batch-details').hidden ? $('main') : $('download-report')).focus();
}

// ---- batches and dashboard -----------------------------------------------------------------------

async function loadBatches() {
  const select = $('batch-select');
  select.disabled = true;
  let batches;
  try {
    ({ batches = [] } = await api('/v1/mentor/batches'));
  } catch (error) {
    fill(select, h('option', { value: '' }, 'Could not load batches'));
    reportError(error);
    return;
  }
  state.batches = batches;
  $('no-batches').hidden = batches.length > 0;
  fill(select, ...batches.map((b) => h('option', { value: b.batchId }, [b.name, b.courseName].filter(Boolean).join(' — '))));
  select.disabled = batches.length === 0;
  if (!batches.length) {
    $('batch-details').hidden = true;
    return;
  }
  const remembered = storageGet(localStorage, `hub:batch:${state.userId}`);
  selectBatch(batches.some((b) => b.batchId === remembered) ? remembered : batches[0].batchId);
}

function selectBatch(batchId) {
  state.batchId = batchId;
  storageSet(localStorage, `hub:batch:${state.userId}`, batchId);
  $('batch-select').value = batchId;
  renderBatchMeta(currentBatch());
  $('batch-details').hidden = false;
  resetProgress();
  clearDashboard();
  fill($('jobs-list'));
  loadDashboard(batchId);
  loadJobs(batchId);
}

function renderBatchMeta(batch) {
  const dates = [formatDate(batch.startDate, dateFormat), formatDate(batch.endDate, dateFormat)].filter(Boolean).join(' – ');
  const parts = [batch.courseName, dates, batch.status != null && `Status: ${BATCH_STATUS[batch.status] || batch.status}`, Number.isFinite(batch.participantCount) && `${formatCount(batch.participantCount)} participants`];
  $('batch-meta').textContent = parts.filter(Boolean).join(' · ');
}

function clearDashboard() {
  for (const value of document.querySelectorAll('#summary [data-stat]')) value.textContent = '–';
  fill($('histogram'));
}

async function loadDashboard(batchId) {
  const panel = $('summary-panel');
  panel.setAttribute('aria-busy', 'true');
  try {
    const dashboard = await api(`/v1/batches/${encodeURIComponent(batchId)}/dashboard`);
    if (batchId !== state.batchId) return; // the person picked another batch meanwhile
    renderSummary(dashboard);
    renderHistogram(dashboard.histogram || []);
    syncProgress(dashboard.latestJob);
  } catch (error) {
    reportError(error);
  } finally {
    panel.setAttribute('aria-busy', 'false');
  }
}

function renderSummary(dashboard) {
  for (const value of document.querySelectorAll('#summary [data-stat]')) {
    const number = dashboard[value.dataset.stat];
    value.textContent = value.dataset.stat === 'averageProgress'
      ? (Number.isFinite(number) ? `${number.toFixed(1)}%` : '–')
      : formatCount(number);
  }
}

function renderHistogram(buckets) {
  const highest = Math.max(1, ...buckets);
  const items = buckets.map((count, i) => {
    const range = i === buckets.length - 1 ? `${10 * i}–100%` : `${10 * i}–${10 * i + 9}%`;
    const bar = h('span', { class: 'histogram__bar', 'aria-hidden': 'true' });
    bar.style.setProperty('--share', String(count / highest));
    return h(
      'li',
      { class: 'histogram__bucket', 'data-bucket': i, 'data-count': count },
      h('span', { class: 'histogram__count' }, formatCount(count), h('span', { class: 'visually-hidden' }, ' participants at ')),
      h('span', { class: 'histogram__plot' }, bar),
      h('span', { class: 'histogram__label' }, range),
    );
  });
  fill($('histogram'), ...items);
}

// ---- report download -----------------------------------------------------------------------------

async function onDownloadClick() {
  const batch = currentBatch();
  if (!batch) return;
  await Promise.race([trackDownloadClick(batch), new Promise((resolve) => setTimeout(resolve, TELEMETRY_WAIT_MS))]);
  if (!state.token) return; // telemetry found the session expired and signed out
  try {
    const result = await api('/v1/reports/course-progress', { method: 'POST', body: { batchId: batch.batchId } });
    if (state.batchId === batch.batchId) showProgress(result.jobId, 0);
    scheduleJobsRefresh();
  } catch (error) {
    if (error.code !== 'DOWNLOAD_IN_PROGRESS') {
      reportError(error);
      return;
    }
    const jobId = error.result ? error.result.jobId : undefined;
    showToast({ type: 'report.duplicate', jobId, key: `duplicate:${jobId}`, message: error.message, context: batchLabel(batch.batchId), ref: error.result && error.result.ref });
    if (jobId && state.batchId === batch.batchId) showProgress(jobId, null);
  }
}

// ---- progress bar --------------------------------------------------------------------------------

/** @param percent 0-100, or null to keep the current value (e.g. we only learnt a job is running) */
function showProgress(jobId, percent, { rows, total, queued, position } = {}) {
  if (state.finishedJobs.has(jobId)) return;
  const bar = $('progress-bar');
  const sameJob = bar.dataset.jobId === jobId;
  const current = sameJob ? Number(bar.getAttribute('aria-valuenow')) : 0;
  // Events can arrive late (replay after reconnect); a bar that goes backwards would mislead.
  const value = Math.max(current, Math.min(100, Math.max(0, Math.round(Number(percent == null ? current : percent) || 0))));
  bar.dataset.jobId = jobId || '';
  bar.setAttribute('aria-valuenow', String(value));
  bar.setAttribute('aria-valuetext', `${value}%`);
  $('progress-fill').style.setProperty('--value', String(value / 100));
  $('progress-label').textContent = queued
    ? `Waiting for a free worker: number ${formatCount(position)} in the queue…`
    : Number.isFinite(total) && total > 0
    ? `Making the report… ${formatCount(rows)} of ${formatCount(total)} participants (${value}%)`
    : value > 0 ? `Making the report… ${value}%` : 'Preparing report…';
  $('report-progress').hidden = false;
}

function resetProgress() {
  const bar = $('progress-bar');
  bar.dataset.jobId = '';
  bar.setAttribute('aria-valuenow', '0');
  bar.setAttribute('aria-valuetext', '0%');
  $('progress-fill').style.setProperty('--value', '0');
  $('report-progress').hidden = true;
}

function syncProgress(job) {
  if (job && (job.status === 'SUBMITTED' || job.status === 'PROCESSING')) showProgress(job.jobId, null);
  else resetProgress();
}

// ---- recent jobs ---------------------------------------------------------------------------------

/** Several events can land together (replay after reconnect): one re-read covers them all. */
function scheduleJobsRefresh() {
  clearTimeout(state.jobsRefresh);
  state.jobsRefresh = setTimeout(() => state.batchId && loadJobs(state.batchId), 250);
}

async function loadJobs(batchId) {
  try {
    const { jobs = [] } = await api(`/v1/reports/jobs?batchId=${encodeURIComponent(batchId)}`);
    if (batchId === state.batchId) renderJobs(jobs);
  } catch (error) {
    reportError(error);
  }
}

function renderJobs(jobs) {
  $('jobs-empty').hidden = jobs.length > 0;
  fill($('jobs-list'), ...jobs.map(renderJob));
}

function renderJob(job) {
  const details = [
    formatDate(job.completedAt || job.submittedAt),
    Number.isFinite(job.rows) && `${formatCount(job.rows)}\u00a0rows`,
    job.status === 'SUCCESS' && formatBytes(job.bytes),
  ].filter(Boolean).join(' · ');
  return h(
    'li',
    { class: 'job', 'data-job-id': job.jobId, 'data-status': job.status },
    h('span', { class: `badge badge--${String(job.status).toLowerCase()}` }, JOB_STATUS[job.status] || job.status),
    h(
      'div',
      { class: 'job__info' },
      h('p', { class: 'job__name' }, job.fileName ? breakable(job.fileName) : 'Course progress report'),
      h('p', { class: 'job__details muted' }, details),
      job.status === 'FAILED' && h('p', { class: 'job__error' }, 'Download has failed. Please try again after sometime'),
      job.error === 'REPORT_EXPIRED' && h('p', { class: 'job__error' }, 'This report has been deleted. Please download it again.'),
    ),
    job.status === 'SUCCESS' && saveLink(job),
  );
}

/** File names have no spaces: offering a break after each "_" keeps a phone from cutting the date apart. */
function breakable(text) {
  return String(text).split('_').reduce((all, part, i) => all.concat(i ? ['_', h('wbr'), part] : [part]), []);
}

/** Links are signed and expire; an old one is swapped for a fresh one before the browser follows it. */
async function onSaveLinkClick(event) {
  const link = event.target.closest('a[data-expires-at][data-job-id]');
  const expiresAt = Date.parse((link && link.dataset.expiresAt) || '');
  if (!link || !(expiresAt <= Date.now() + 5000)) return;
  event.preventDefault();
  try {
    const job = await api(`/v1/reports/jobs/${encodeURIComponent(link.dataset.jobId)}`);
    const href = safeUrl(job.downloadUrl);
    if (!href) {
      showToast({ type: 'error', message: 'This file is no longer available. Please download the report again.', alert: true });
      return;
    }
    link.href = href;
    link.dataset.expiresAt = job.expiresAt || '';
    link.click();
  } catch (error) {
    reportError(error);
  }
}

// ---- telemetry (Sunbird v3) ----------------------------------------------------------------------

let telemetryFlush = null;

function interactEvent(batch) {
  return {
    eid: 'INTERACT',
    ets: Date.now(),
    ver: '3.0',
    mid: `INTERACT:${uuid()}`,
    actor: { id: state.userId, type: 'User' },
    context: {
      channel: 'diksha',
      pdata: { id: 'diksha.course-report-hub', ver: '1.0', pid: PAGE_ID },
      env: PORTAL_REPORTS.env,
      sid: storedId(sessionStorage, SESSION_KEY),
      did: storedId(localStorage, DEVICE_KEY),
      cdata: [
        { id: batch.courseId, type: 'Course' },
        { id: batch.batchId, type: 'Batch' },
      ],
    },
    object: { id: batch.batchId, type: 'CourseBatch', ver: '1.0', rollup: { l1: batch.courseId } },
    edata: { type: 'click', subtype: '', id: PORTAL_REPORTS.dataset, pageid: PORTAL_REPORTS.pageid },
  };
}

function readTelemetryQueue() {
  try {
    const queue = JSON.parse(storageGet(localStorage, TELEMETRY_KEY) || '[]');
    return Array.isArray(queue) ? queue : [];
  } catch (error) {
    return [];
  }
}

function writeTelemetryQueue(queue) {
  storageSet(localStorage, TELEMETRY_KEY, queue.length ? JSON.stringify(queue.slice(-TELEMETRY_QUEUE_LIMIT)) : null);
}

function trackDownloadClick(batch) {
  // Queued first, so an event survives a failed send or a closed tab and goes out with the next flush.
  writeTelemetryQueue([...readTelemetryQueue(), interactEvent(batch)]);
  return flushTelemetry();
}

/** Sends queued events in order; resolves when the queue is empty or the hub cannot take them now. */
function flushTelemetry() {
  telemetryFlush = telemetryFlush || (async () => {
    let queue;
    while (state.token && (queue = readTelemetryQueue()).length) {
      const batch = queue.slice(0, 50);
      try {
        await api('/v1/telemetry', {
          method: 'POST',
          body: { id: 'api.sunbird.telemetry', ver: '3.0', params: { msgid: uuid() }, ets: Date.now(), events: batch },
        });
      } catch (error) {
        // A 400 means these events will never be accepted: drop them rather than block the queue forever.
        if (error.status !== 400) return;
        console.warn('Telemetry rejected:', error.message);
      }
      const sent = new Set(batch.map((event) => event.mid));
      writeTelemetryQueue(readTelemetryQueue().filter((event) => !sent.has(event.mid)));
    }
  })().finally(() => {
    telemetryFlush = null;
  });
  return telemetryFlush;
}

// ---- start ---------------------------------------------------------------------------------------

function bindEvents() {
  $('signin-form').addEventListener('submit', onSignInSubmit);
  $('sign-out').addEventListener('click', () => signOut());
  $('batch-select').addEventListener('change', (event) => selectBatch(event.target.value));
  $('download-report').addEventListener('click', onDownloadClick);
  $('refresh-jobs').addEventListener('click', () => state.batchId && loadJobs(state.batchId));
  document.addEventListener('click', onSaveLinkClick);
  // Links in the list expire; coming back to the page is the moment to show fresh ones.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && state.token) refreshBatchState();
  });
  addEventListener('online', () => state.token && flushTelemetry());
}

function init() {
  bindEvents();
  reserveToastSpace();
  const token = takeTokenFromFragment() || storageGet(sessionStorage, TOKEN_KEY);
  const problem = token ? tokenProblem(token) : null;
  if (token && !problem) signIn(token);
  else signOut(problem);
}

window.hubApp = {
  get client() {
    return state.client;
  },
  get state() {
    return state;
  },
  signIn,
  signOut,
  refresh: refreshBatchState,
};

init();
