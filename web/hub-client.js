// Course report hub client: live report notifications for a signed-in user.
//
// A standalone ES module (no DOM of the dashboard page needed), for the portal and the mobile app. It is
// published as it is written (no build step) and keeps to ES2017 syntax, so Android System WebView 61
// and newer can parse it; README.md beside it shows how the portal and the app use it.
//
//   import { HubClient } from '@diksha/course-report-hub-client';
//   const client = new HubClient({ getToken: () => keycloak.updateToken(30).then(() => keycloak.token) });
//   client.addEventListener('event', (e) => console.log(e.detail));
//   client.start();
//
// Delivery rules: the hub keeps each user's events in an ordered log and resumes from `lastEventId`,
// so after any reconnect we ask for what we missed and drop what we already showed. Every tab keeps
// its own connection (each tab shows each event once) and shares events with the other tabs over a
// BroadcastChannel, so a tab whose socket was dropped in the background still hears about them.

const DEFAULT_TRANSPORTS = ['ws', 'sse', 'poll'];
const EVENT_TYPES = ['report.submitted', 'report.progress', 'report.completed', 'report.failed', 'report.duplicate'];
const ENDINGS = ['report.completed', 'report.failed'];
const CHANNEL_NAME = 'hub-events';
const OPEN_TIMEOUT_MS = 10000; // a blocked socket may hang instead of failing; treat that as a failure
const STABLE_MS = 10000; // a connection that lived this long resets the backoff
const STALE_AFTER_HIDDEN_MS = 30000; // mobile webviews silently kill sockets of background pages
const SEEN_LIMIT = 1000;
const ENDED_LIMIT = 200; // jobs whose ending was shown; far more than one person runs within a log's life
const REQUEST_TIMEOUT_MS = 20000;
const LINK_MARGIN_MS = 5000; // a link this close to expiry is swapped for a fresh one before it is used
const TOKEN_EXPIRED = 4001; // the hub's WebSocket close code: the token the socket was opened with expired

// `globalThis` is newer than the oldest WebViews this runs in.
const root = typeof self !== 'undefined' ? self : typeof globalThis !== 'undefined' ? globalThis : {};

/** An error answer of the hub (or a network failure, status 0), with the envelope's code and result. */
export class HubError extends Error {
  constructor(message, details) {
    super(message);
    const d = details || {};
    this.name = 'HubError';
    this.status = d.status || 0;
    this.code = d.code || null;
    this.result = d.result || null;
  }
}

function timeoutSignal(ms) {
  if (typeof AbortController !== 'function') return undefined; // Chrome 61-65: the request just waits
  const controller = new AbortController();
  setTimeout(() => controller.abort(), ms);
  return controller.signal;
}

/**
 * Calls a /v1 endpoint and returns the envelope's `result`; throws HubError with `params.errmsg`
 * (a sentence for people) and `params.err` (a code for programs) on any failure. With no token the
 * call carries none: behind the portal's proxy, which adds it from the session cookie.
 */
export async function hubRequest(baseUrl, token, path, options) {
  const o = options || {};
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (o.body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(baseUrl + path, {
      method: o.method || 'GET',
      headers,
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
      cache: 'no-store',
      credentials: o.credentials || 'same-origin',
      signal: timeoutSignal(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new HubError('Cannot reach the report service. Check your connection and try again.', { code: 'NETWORK_ERROR' });
  }
  const envelope = await response.json().catch(() => null);
  const params = (envelope && envelope.params) || {};
  const result = envelope && envelope.result ? envelope.result : null;
  if (!response.ok || params.status === 'failed') {
    throw new HubError(params.errmsg || `The report service answered ${response.status}. Please try again.`, {
      status: response.status,
      code: params.err || null,
      result,
    });
  }
  return result || {};
}

/** The JWT payload (unverified: the hub verifies it), or null when the text is not a JWT. */
export function decodeJwt(token) {
  const part = String(token == null ? '' : token).trim().split('.')[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)); // names may be in Devanagari
    return claims && typeof claims === 'object' ? claims : null;
  } catch (error) {
    return null;
  }
}

/** Sunbird's user id: Keycloak federated subjects `f:<realm-id>:<userId>` resolve to `<userId>`. */
export function userIdFromSub(sub) {
  const subject = String(sub == null ? '' : sub);
  return subject.startsWith('f:') && subject.split(':').length >= 3 ? subject.slice(subject.lastIndexOf(':') + 1) : subject;
}

export function userIdFromToken(token) {
  const claims = decodeJwt(token);
  return claims && claims.sub ? userIdFromSub(claims.sub) : null;
}

/** Event ids are Redis stream ids `<ms>-<seq>`: order them numerically, not as text. */
export function compareEventIds(a, b) {
  const x = parseEventId(a);
  const y = parseEventId(b);
  if (!x || !y) return (x ? 1 : 0) - (y ? 1 : 0); // no id sorts before any id
  return x[0] - y[0] || x[1] - y[1];
}

function parseEventId(id) {
  const match = /^(\d+)(?:-(\d+))?$/.exec(String(id == null ? '' : id));
  return match ? [Number(match[1]), Number(match[2] || 0)] : null;
}

function readStorage(key) {
  try {
    return root.localStorage ? root.localStorage.getItem(key) : null;
  } catch (error) {
    return null; // storage can be disabled (private mode, webview settings)
  }
}

function writeStorage(key, value) {
  try {
    if (root.localStorage) root.localStorage.setItem(key, value);
  } catch (error) {
    // Without storage we still dedupe in memory; only resumption after a reload is lost.
  }
}

function hubEvent(type, detail) {
  return typeof CustomEvent === 'function' ? new CustomEvent(type, { detail }) : { type, detail };
}

/**
 * Listeners as on a DOM EventTarget. Not a subclass of it: `new EventTarget()` needs Chrome 64, and a
 * listener that throws must not stop the client or the other listeners.
 */
class Emitter {
  constructor() {
    this._listeners = {};
  }

  addEventListener(type, listener) {
    const list = this._listeners[type] || (this._listeners[type] = []);
    if (listener && list.indexOf(listener) < 0) list.push(listener);
  }

  removeEventListener(type, listener) {
    const list = this._listeners[type] || [];
    const index = list.indexOf(listener);
    if (index >= 0) list.splice(index, 1);
  }

  dispatchEvent(event) {
    for (const listener of (this._listeners[event.type] || []).slice()) {
      try {
        if (typeof listener === 'function') listener.call(this, event);
        else listener.handleEvent(event);
      } catch (error) {
        setTimeout(() => {
          throw error; // reported as uncaught, as a DOM listener's error would be
        });
      }
    }
    return true;
  }
}

/**
 * Emits:
 *  - 'event'        detail: a hub event ({id, type, ts, jobId, batchId, ...}), each id at most once per tab,
 *                   and at most one ending (completed or failed) per job
 *  - 'resync'       the hub could not replay everything missed: re-read job state over REST
 *  - 'status'       detail: 'connecting' | 'open' | 'closed' | 'offline' | 'paused', or the transport
 *                   name ('ws'|'sse'|'poll') when the client switches transport
 *  - 'unauthorized' the token was refused twice (a fresh one included); the client has stopped
 * See hub-client.d.ts for every option.
 */
export class HubClient extends Emitter {
  constructor(options) {
    super();
    const o = options || {};
    const transports = (o.transports || DEFAULT_TRANSPORTS).slice();
    if (o.getToken !== undefined && typeof o.getToken !== 'function') throw new TypeError('HubClient: getToken must be a function');
    const unknown = transports.filter((t) => DEFAULT_TRANSPORTS.indexOf(t) < 0);
    if (!transports.length || unknown.length) throw new TypeError(`Unknown transports: ${unknown.join(', ') || '(none)'}`);
    if (o.onDownload !== undefined && typeof o.onDownload !== 'function') throw new TypeError('HubClient: onDownload must be a function');
    const trim = (url) => String(url).replace(/\/+$/, '');
    this._baseUrl = trim(o.baseUrl || '');
    this._streamBase = o.streamUrl ? trim(o.streamUrl) : this._baseUrl;
    this._getToken = o.getToken || null; // none: gateway mode, behind a proxy that adds the token
    this._givenUserId = o.userId || null;
    this._credentials = o.credentials || 'same-origin';
    this._lang = o.lang || null;
    this._storagePrefix = o.storagePrefix || 'hub';
    this._transports = transports;
    this._pollIntervalMs = o.pollIntervalMs || 3000;
    this._hiddenPollIntervalMs = o.hiddenPollIntervalMs || 30000;
    this._maxOpenFailures = o.maxOpenFailures || 3;
    this._backoffBaseMs = o.backoffBaseMs || 1000;
    this._backoffCapMs = o.backoffCapMs || 30000;
    this._heartbeatMs = o.heartbeatMs || 20000; // the hub's default; its ticket answer says the real one
    this._silentHeartbeats = o.silentHeartbeats || 2.5;
    this._onDownload = o.onDownload || null;

    this._running = false;
    this._paused = false;
    this._userId = null;
    this._state = 'closed';
    this._transportIndex = 0;
    this._openFailures = 0;
    this._attempt = 0;
    this._generation = 0; // bumps on every (re)connect so callbacks of an old connection are ignored
    this._connection = null;
    this._timer = null;
    this._silence = null;
    this._hiddenAt = 0;
    this._channel = null;
    this._refused = false; // the last token was refused: the next one is asked for fresh, once

    this._streamId = null; // last id received on this tab's own connection: where to resume from
    this._floor = null; // ids up to here were shown before this tab started
    this._seen = new Set();
    this._ended = {}; // jobId -> id of the one ending shown for it
    this._resyncedAt = undefined; // the stale id a resync was already reported for (polling repeats it)
    this._needBaseline = false;

    this._onVisibilityChange = this._onVisibilityChange.bind(this);
    this._onOnline = this._onOnline.bind(this);
    this._onOffline = this._onOffline.bind(this);
  }

  get lastEventId() {
    return this._streamId;
  }

  get transport() {
    return this._transports[this._transportIndex];
  }

  get state() {
    return this._state;
  }

  get userId() {
    return this._userId;
  }

  start() {
    if (this._running) return;
    this._userId = null;
    this._seen.clear();
    this._ended = {};
    this._resyncedAt = undefined;
    this._transportIndex = 0;
    this._openFailures = 0;
    this._attempt = 0;
    this._refused = false;
    this._paused = false;
    this._running = true;
    this._listen();
    if (!this._getToken) this._adopt(this._givenUserId || 'anonymous');
    this._connect();
  }

  stop() {
    if (!this._running) return;
    this._running = false;
    this._halt();
    this._unlisten();
    this._setState('closed');
  }

  /** The app went to the background (Cordova's `pause`): no connection, no timers, until resume(). */
  pause() {
    if (!this._running || this._paused) return;
    this._paused = true;
    this._halt();
    this._setState('paused');
  }

  /** Back in the foreground (Cordova's `resume`): reconnects at once and catches up from the last id. */
  resume() {
    if (!this._running || !this._paused) return;
    this._paused = false;
    this._transportIndex = 0;
    this._openFailures = 0;
    this._reconnectNow();
  }

  /**
   * Saves a report's file: `target` is a `report.completed` event or a job read over REST. A link near
   * its expiry is swapped for a fresh one first. With `onDownload` the file goes to it (the app's
   * download manager); otherwise the browser saves it as a link with `download` would.
   */
  async download(target) {
    let url = target.downloadUrl;
    let fileName = target.fileName || '';
    const expiresAt = Date.parse(target.expiresAt || '');
    if (target.jobId && (!url || expiresAt <= Date.now() + LINK_MARGIN_MS)) {
      const job = await this.request(`/v1/reports/jobs/${encodeURIComponent(target.jobId)}`);
      url = job.downloadUrl;
      fileName = job.fileName || fileName;
    }
    if (!url) throw new HubError('This file is no longer available. Please download the report again.', { code: 'REPORT_EXPIRED' });
    if (this._onDownload) {
      await this._onDownload(url, fileName);
      return;
    }
    const link = document.createElement('a');
    link.href = url;
    link.download = fileName;
    link.rel = 'noopener';
    link.style.display = 'none';
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  /** A /v1 call with this client's token (asked afresh once if refused) or the proxy's session. */
  async request(path, options) {
    let token = await this._token();
    try {
      return await hubRequest(this._baseUrl, token, path, this._requestOptions(options));
    } catch (error) {
      if (error.status !== 401 || !this._getToken) throw error;
      token = await this._token(true);
      return hubRequest(this._baseUrl, token, path, this._requestOptions(options));
    }
  }

  _requestOptions(options) {
    return Object.assign({ credentials: this._credentials }, options);
  }

  _token(refresh) {
    if (!this._getToken) return Promise.resolve(null);
    return Promise.resolve(this._getToken({ refresh: Boolean(refresh) }));
  }

  get _storageKey() {
    return `${this._storagePrefix}:lastEventId:${this._userId}`;
  }

  get _endedKey() {
    return `${this._storagePrefix}:ended:${this._userId}`;
  }

  /** The user is known (from the first token, or given): their resume point applies from now on. */
  _adopt(userId) {
    this._userId = userId;
    this._streamId = this._floor = readStorage(this._storageKey);
  }

  _halt() {
    this._generation++;
    clearTimeout(this._timer);
    this._closeConnection();
  }

  // ---- page lifecycle -------------------------------------------------------------------------

  _listen() {
    if (typeof BroadcastChannel === 'function') {
      this._channel = new BroadcastChannel(CHANNEL_NAME);
      this._channel.onmessage = (message) => {
        const data = message.data;
        if (data && data.userId === this._userId && data.event) this._deliver(data.event);
      };
    }
    if (root.document) root.document.addEventListener('visibilitychange', this._onVisibilityChange);
    if (root.addEventListener) {
      root.addEventListener('online', this._onOnline);
      root.addEventListener('offline', this._onOffline);
    }
  }

  _unlisten() {
    if (this._channel) this._channel.close();
    this._channel = null;
    if (root.document) root.document.removeEventListener('visibilitychange', this._onVisibilityChange);
    if (root.removeEventListener) {
      root.removeEventListener('online', this._onOnline);
      root.removeEventListener('offline', this._onOffline);
    }
  }

  _onVisibilityChange() {
    if (document.visibilityState === 'hidden') {
      this._hiddenAt = Date.now();
      // Polling slows down at once; the round already waiting would otherwise keep the fast pace.
      if (this.transport === 'poll' && this._state === 'open') this._schedulePoll(this._generation);
      return;
    }
    const longAway = this._hiddenAt && Date.now() - this._hiddenAt > STALE_AFTER_HIDDEN_MS;
    this._hiddenAt = 0;
    // An "open" socket may be dead after a long background period; resuming by id makes a fresh one free.
    if (this._state !== 'open' || longAway || this.transport === 'poll') this._reconnectNow();
  }

  _onOnline() {
    // Failures while offline say nothing about sockets being blocked: try the preferred transport again.
    this._transportIndex = 0;
    this._openFailures = 0;
    this._reconnectNow();
  }

  /** Nothing gets through: close now instead of retrying into nothing, and wait for `online`. */
  _onOffline() {
    if (!this._running || this._paused) return;
    this._halt();
    this._setState('offline');
  }

  _offline() {
    return root.navigator ? root.navigator.onLine === false : false;
  }

  _reconnectNow() {
    if (!this._running || this._paused) return;
    this._attempt = 0;
    this._connect();
  }

  // ---- connecting -----------------------------------------------------------------------------

  async _connect() {
    clearTimeout(this._timer);
    this._closeConnection();
    if (!this._running || this._paused) return;
    const generation = ++this._generation;
    if (this._offline()) {
      this._setState('offline');
      return;
    }
    this._setState('connecting');
    try {
      const token = await this._token(this._refused);
      if (generation !== this._generation) return;
      if (this._userId === null) this._adopt(userIdFromToken(token) || this._givenUserId || 'anonymous');
      if (this.transport === 'poll') {
        this._needBaseline = !this._streamId;
        this._poll(generation, token);
        return;
      }
      if (!this._streamId && !(await this._takeBaseline(generation, token))) return;
      const answer = await hubRequest(this._baseUrl, token, this._withLang('/v1/notifications/ticket'), {
        method: 'POST',
        credentials: this._credentials,
      });
      if (generation !== this._generation) return;
      this._refused = false;
      const heartbeatMs = answer.heartbeat > 0 ? answer.heartbeat * 1000 : this._heartbeatMs;
      if (this.transport === 'ws') this._openSocket(answer.ticket, generation, heartbeatMs);
      else this._openEventSource(answer.ticket, generation, heartbeatMs);
    } catch (error) {
      if (generation === this._generation) this._onRequestError(error);
    }
  }

  /**
   * A feed opened without a resume point starts at the hub's "now"; if that first connection dropped
   * before any event came, the next one would start at a later "now" and skip what happened between.
   * So a client with no point takes the hub's newest id first (history is not news: it is not shown).
   * Returns false when this connection attempt was superseded meanwhile.
   */
  async _takeBaseline(generation, token) {
    const result = await hubRequest(this._baseUrl, token, this._withLang('/v1/notifications'), { credentials: this._credentials });
    if (generation !== this._generation) return false;
    if (result.lastEventId && !this._streamId) this._advance(result.lastEventId);
    return true;
  }

  _openSocket(ticket, generation, heartbeatMs) {
    const socket = new WebSocket(this._streamUrl('/v1/notifications/ws', ticket, true));
    const watch = this._watch(generation, heartbeatMs, () => socket.close());
    socket.onopen = watch.opened;
    socket.onmessage = (message) => {
      if (generation !== this._generation || typeof message.data !== 'string') return;
      watch.heard();
      this._onFrame(message.data);
    };
    // 'error' is always followed by 'close', so close alone decides what happens next.
    socket.onclose = (closing) => watch.dropped(closing.code);
    this._connection = {
      close: () => {
        watch.cancel();
        socket.onclose = socket.onmessage = socket.onopen = null;
        socket.close();
      },
    };
  }

  _openEventSource(ticket, generation, heartbeatMs) {
    const source = new EventSource(this._streamUrl('/v1/notifications/stream', ticket, false));
    const watch = this._watch(generation, heartbeatMs, () => source.close());
    const onMessage = (message) => {
      if (generation !== this._generation) return;
      watch.heard();
      this._onFrame(message.data, message.lastEventId);
    };
    source.onopen = watch.opened;
    source.onmessage = onMessage;
    // Also accept named SSE events (`event: report.completed`); ids keep a frame from counting twice.
    for (const type of EVENT_TYPES.concat(['resync'])) source.addEventListener(type, onMessage);
    // The ticket is single use, so EventSource's own retry cannot succeed: reconnect ourselves.
    source.onerror = () => {
      source.close();
      watch.dropped();
    };
    this._connection = {
      close: () => {
        watch.cancel();
        source.onerror = null;
        source.close();
      },
    };
  }

  /**
   * Tracks one connection: whether it opened in time, and whether it still lives. The hub sends a
   * heartbeat frame when it has nothing else to say, so a connection silent for several heartbeats is
   * dead (a network switch can leave a socket that neither carries nor closes) and is replaced.
   */
  _watch(generation, heartbeatMs, abort) {
    let openedAt = 0;
    let done = false;
    let timer = null;
    const arm = (ms, onExpiry) => {
      clearTimeout(timer);
      timer = setTimeout(onExpiry, ms);
    };
    const dropped = (code) => {
      clearTimeout(timer);
      if (done || generation !== this._generation) return;
      done = true;
      this._connection = null;
      this._onDrop(openedAt ? Date.now() - openedAt : null, code);
    };
    const dead = () => {
      abort();
      dropped();
    };
    const heard = () => arm(heartbeatMs * this._silentHeartbeats, dead);
    const opened = () => {
      if (generation !== this._generation) return;
      openedAt = Date.now();
      heard();
      this._onOpen();
    };
    arm(OPEN_TIMEOUT_MS, dead);
    return { opened, heard, dropped, cancel: () => clearTimeout(timer) };
  }

  _withLang(path) {
    return this._lang ? `${path}${path.indexOf('?') < 0 ? '?' : '&'}lang=${encodeURIComponent(this._lang)}` : path;
  }

  _streamUrl(path, ticket, websocket) {
    const url = new URL(this._streamBase + path, root.location ? root.location.href : undefined);
    if (websocket) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('ticket', ticket);
    if (this._streamId) url.searchParams.set('lastEventId', this._streamId);
    if (this._lang) url.searchParams.set('lang', this._lang);
    return url.href;
  }

  _onOpen() {
    this._openFailures = 0;
    this._setState('open');
  }

  /**
   * @param openFor how long the connection was open in ms, or null if it never opened
   * @param code the WebSocket close code, when there is one
   */
  _onDrop(openFor, code) {
    this._setState('closed');
    this._resyncedAt = undefined; // a new connection that is told to resync means we missed more
    if (code === TOKEN_EXPIRED) {
      this._onRefused(new HubError('Your session has expired. Please sign in again.', { status: 401, code: 'TOKEN_EXPIRED' }));
      return;
    }
    if (openFor === null && !this._offline()) this._openFailures++;
    if (openFor !== null && openFor >= STABLE_MS) this._attempt = 0;
    if (this._openFailures >= this._maxOpenFailures && this._transportIndex < this._transports.length - 1) {
      // The network lets HTTP through but not this transport (proxy, firewall): step down.
      this._transportIndex++;
      this._openFailures = 0;
      this._attempt = 0;
      this.dispatchEvent(hubEvent('status', this.transport));
      this._connect();
      return;
    }
    this._scheduleReconnect();
  }

  _onRequestError(error) {
    if (error.status === 401) {
      this._onRefused(error);
      return;
    }
    this._setState(this._offline() ? 'offline' : 'closed');
    if (!this._offline()) this._scheduleReconnect();
  }

  /**
   * A token was refused (HTTP 401, or the socket closed because its token expired): ask for a fresh
   * one and carry on from the last id; a second refusal in a row means the person must sign in again.
   */
  _onRefused(error) {
    if (this._refused || !this._getToken) {
      this.stop();
      this.dispatchEvent(hubEvent('unauthorized', error));
      return;
    }
    this._refused = true;
    this._reconnectNow();
  }

  _scheduleReconnect() {
    clearTimeout(this._timer);
    if (!this._running || this._paused) return;
    const ceiling = Math.min(this._backoffCapMs, this._backoffBaseMs * Math.pow(2, this._attempt));
    this._attempt = Math.min(this._attempt + 1, 16);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter spreads a fleet of reconnecting clients
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _closeConnection() {
    if (this._connection) this._connection.close();
    this._connection = null;
  }

  // ---- polling --------------------------------------------------------------------------------

  /** @param token the token to poll with; unset, the next one is asked for */
  async _poll(generation, token) {
    let result;
    try {
      if (token === undefined) token = await this._token(this._refused);
      if (generation !== this._generation) return;
      const after = this._streamId ? `?after=${encodeURIComponent(this._streamId)}` : '';
      result = await hubRequest(this._baseUrl, token, this._withLang(`/v1/notifications${after}`), { credentials: this._credentials });
    } catch (error) {
      if (generation === this._generation) this._onRequestError(error);
      return;
    }
    if (generation !== this._generation) return;
    this._refused = false;
    if (this._state !== 'open') this._onOpen();
    this._attempt = 0;
    const events = Array.isArray(result.events) ? result.events : [];
    if (result.resync || this._needBaseline) {
      // Without a usable position the hub answers with its latest events: that history is already
      // reflected in job state over REST, so it only sets our position and is not shown as news.
      // A resync with nothing kept at all (the log expired) leaves nothing to re-read.
      if (result.resync && events.length) this._onResync();
      this._needBaseline = false;
      const newest = result.lastEventId || (events.length ? events[events.length - 1].id : null);
      if (newest) this._advance(newest);
    } else {
      for (const event of events) this._onEvent(event);
    }
    this._schedulePoll(generation);
  }

  /** A hidden page polls slowly (a phone's battery and data), a visible one at the set pace. */
  _schedulePoll(generation) {
    clearTimeout(this._timer);
    const hidden = root.document && root.document.visibilityState === 'hidden';
    this._timer = setTimeout(() => this._poll(generation), hidden ? this._hiddenPollIntervalMs : this._pollIntervalMs);
  }

  // ---- events ---------------------------------------------------------------------------------

  _onFrame(text, sseId) {
    let event;
    try {
      event = JSON.parse(text);
    } catch (error) {
      return; // not ours to interpret; one bad frame must not break the stream
    }
    if (!event || typeof event !== 'object' || event.type === 'heartbeat') return;
    if (event.type === 'resync') this._onResync();
    else this._onEvent(event.id ? event : Object.assign({}, event, { id: sseId }));
  }

  /** An event from this tab's own connection, which the hub sends in id order. */
  _onEvent(event) {
    if (!event || !event.id || (this._streamId && compareEventIds(event.id, this._streamId) <= 0)) return;
    this._advance(event.id);
    if (this._deliver(event) && this._channel) this._channel.postMessage({ userId: this._userId, event });
  }

  _advance(id) {
    this._streamId = id;
    // Other tabs may be further along; the shared value only ever moves forward.
    if (compareEventIds(id, readStorage(this._storageKey)) > 0) writeStorage(this._storageKey, id);
  }

  /** Shows an event unless this tab has shown it already (it can arrive by socket and by channel). */
  _deliver(event) {
    const id = event.id;
    if (!id || this._seen.has(id) || (this._floor && compareEventIds(id, this._floor) <= 0)) return false;
    this._seen.add(id);
    if (this._seen.size > SEEN_LIMIT) {
      const oldest = Array.from(this._seen).sort(compareEventIds).slice(0, this._seen.size - SEEN_LIMIT);
      for (const old of oldest) this._seen.delete(old);
      this._floor = oldest[oldest.length - 1]; // forgotten ids must still count as shown
    }
    if (!this._firstEnding(event)) return false;
    this.dispatchEvent(hubEvent('event', event));
    return true;
  }

  /**
   * A job ends once for the person, whatever the log holds (a completion and a failure of one job, or
   * an ending stored again after a Redis failover): the first ending seen counts, by any tab. An ending
   * support pushed again on purpose (`replayed`) is shown: telling the person again is what it is for.
   */
  _firstEnding(event) {
    if (ENDINGS.indexOf(event.type) < 0 || !event.jobId || event.replayed) return true;
    let shared = {};
    try {
      shared = JSON.parse(readStorage(this._endedKey) || '{}') || {};
    } catch (error) {
      shared = {};
    }
    const known = this._ended[event.jobId] || shared[event.jobId];
    if (known) return known === event.id; // the same ending relayed by another tab is this tab's first
    this._ended[event.jobId] = event.id;
    shared[event.jobId] = event.id;
    const jobs = Object.keys(shared);
    for (const jobId of jobs.slice(0, Math.max(0, jobs.length - ENDED_LIMIT))) delete shared[jobId];
    writeStorage(this._endedKey, JSON.stringify(shared));
    return true;
  }

  _onResync() {
    if (this._resyncedAt === this._streamId) return;
    this._resyncedAt = this._streamId;
    this.dispatchEvent(hubEvent('resync'));
  }

  _setState(state) {
    if (state === this._state) return;
    this._state = state;
    this.dispatchEvent(hubEvent('status', state));
  }
}
