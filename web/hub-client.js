// Course report hub client: live report notifications for a signed-in user.
//
// Standalone ES module (no DOM of the dashboard page needed), usable by the portal or a mobile webview:
//
//   import { HubClient } from '/web/hub-client.js';
//   const client = new HubClient({ getToken: () => token });
//   client.addEventListener('event', (e) => console.log(e.detail));
//   client.start();
//
// Behind the portal (its browser holds no token): calls go through the portal's proxy, which adds the
// user's token; the socket goes straight to the hub through DIKSHA's nginx with the ticket got that way:
//
//   new HubClient({ baseUrl: '/report-hub-api', streamBaseUrl: '/report-hub', userId, lang: 'hi' });
//
// Delivery rules: the hub keeps each user's events in an ordered log and resumes from `lastEventId`,
// so after any reconnect we ask for what we missed and drop what we already showed. Every tab keeps
// its own connection (each tab shows each event once) and shares events with the other tabs over a
// BroadcastChannel, so a tab whose socket was dropped in the background still hears about them.

const DEFAULT_TRANSPORTS = ['ws', 'sse', 'poll'];
const EVENT_TYPES = ['report.submitted', 'report.progress', 'report.completed', 'report.failed', 'report.duplicate'];
const CHANNEL_NAME = 'hub-events';
const OPEN_TIMEOUT_MS = 10_000; // a blocked socket may hang instead of failing; treat that as a failure
const STABLE_MS = 10_000; // a connection that lived this long resets the backoff
const STALE_AFTER_HIDDEN_MS = 30_000; // mobile webviews silently kill sockets of background pages
const SEEN_LIMIT = 1000;
const REQUEST_TIMEOUT_MS = 20_000;

/** An error answer of the hub (or a network failure, status 0), with the envelope's code and result. */
export class HubError extends Error {
  constructor(message, { status = 0, code = null, result = null } = {}) {
    super(message);
    this.name = 'HubError';
    this.status = status;
    this.code = code;
    this.result = result;
  }
}

/**
 * Calls a /v1 endpoint and returns the envelope's `result`; throws HubError with `params.errmsg`
 * (a sentence for people) and `params.err` (a code for programs) on any failure.
 */
export async function hubRequest(baseUrl, token, path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`; // none behind the portal: its proxy adds the user's
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      signal: AbortSignal.timeout?.(REQUEST_TIMEOUT_MS),
    });
  } catch {
    throw new HubError('Cannot reach the report service. Check your connection and try again.', { code: 'NETWORK_ERROR' });
  }
  const envelope = await response.json().catch(() => null);
  const params = envelope?.params ?? {};
  if (!response.ok || params.status === 'failed') {
    throw new HubError(params.errmsg || `The report service answered ${response.status}. Please try again.`, {
      status: response.status,
      code: params.err ?? null,
      result: envelope?.result ?? null,
    });
  }
  return envelope?.result ?? {};
}

/** The JWT payload (unverified: the hub verifies it), or null when the text is not a JWT. */
export function decodeJwt(token) {
  const part = String(token ?? '').trim().split('.')[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)); // names may be in Devanagari
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Sunbird's user id: Keycloak federated subjects `f:<realm-id>:<userId>` resolve to `<userId>`. */
export function userIdFromSub(sub) {
  const subject = String(sub ?? '');
  return subject.startsWith('f:') && subject.split(':').length >= 3 ? subject.slice(subject.lastIndexOf(':') + 1) : subject;
}

export function userIdFromToken(token) {
  const claims = decodeJwt(token);
  return claims?.sub ? userIdFromSub(claims.sub) : null;
}

/** Event ids are Redis stream ids `<ms>-<seq>`: order them numerically, not as text. */
export function compareEventIds(a, b) {
  const x = parseEventId(a);
  const y = parseEventId(b);
  if (!x || !y) return (x ? 1 : 0) - (y ? 1 : 0); // no id sorts before any id
  return x[0] - y[0] || x[1] - y[1];
}

function parseEventId(id) {
  const match = /^(\d+)(?:-(\d+))?$/.exec(String(id ?? ''));
  return match ? [Number(match[1]), Number(match[2] ?? 0)] : null;
}

function readStorage(key) {
  try {
    return globalThis.localStorage?.getItem(key) ?? null;
  } catch {
    return null; // storage can be disabled (private mode, webview settings)
  }
}

function writeStorage(key, value) {
  try {
    globalThis.localStorage?.setItem(key, value);
  } catch {
    // Without storage we still dedupe in memory; only resumption after a reload is lost.
  }
}

/**
 * Emits:
 *  - 'event'        detail: a hub event ({id, type, ts, jobId, batchId, ...}), each id at most once per tab
 *  - 'resync'       the hub could not replay everything missed: re-read job state over REST
 *  - 'status'       detail: 'connecting' | 'open' | 'closed', or the transport name ('ws'|'sse'|'poll')
 *                   when the client switches transport
 *  - 'unauthorized' the token was refused (HTTP 401); the client has stopped
 */
export class HubClient extends EventTarget {
  #baseUrl;
  #streamBaseUrl; // where the socket or stream opens: the hub through nginx, when calls go through a proxy
  #getToken;
  #givenUserId;
  #storagePrefix;
  #transports;
  #pollIntervalMs;
  #maxOpenFailures;
  #backoffBaseMs;
  #backoffCapMs;
  #langQuery; // `lang=<code>&` or '': the language of events' `message` (else the browser's Accept-Language)

  #running = false;
  #userId = null;
  #state = 'closed';
  #transportIndex = 0;
  #openFailures = 0;
  #attempt = 0;
  #generation = 0; // bumps on every (re)connect so callbacks of an old connection are ignored
  #connection = null;
  #timer = null;
  #hiddenAt = 0;
  #channel = null;

  #streamId = null; // last id received on this tab's own connection: where to resume from
  #floor = null; // ids up to here were shown before this tab started
  #seen = new Set();
  #resyncedAt; // the stale id a resync was already reported for (polling repeats it every round)
  #needBaseline = false;

  constructor({
    baseUrl = '',
    streamBaseUrl = baseUrl,
    getToken = () => null,
    userId = null,
    storagePrefix = 'hub',
    transports = DEFAULT_TRANSPORTS,
    pollIntervalMs = 3000,
    maxOpenFailures = 3,
    backoffBaseMs = 1000,
    backoffCapMs = 30_000,
    lang = '',
  } = {}) {
    super();
    if (typeof getToken !== 'function') throw new TypeError('getToken must be a function');
    const unknown = transports.filter((t) => !DEFAULT_TRANSPORTS.includes(t));
    if (!transports.length || unknown.length) throw new TypeError(`Unknown transports: ${unknown.join(', ') || '(none)'}`);
    this.#baseUrl = baseUrl.replace(/\/$/, '');
    this.#streamBaseUrl = streamBaseUrl.replace(/\/$/, '');
    this.#getToken = getToken;
    this.#givenUserId = userId;
    this.#storagePrefix = storagePrefix;
    this.#transports = [...transports];
    this.#pollIntervalMs = pollIntervalMs;
    this.#maxOpenFailures = maxOpenFailures;
    this.#backoffBaseMs = backoffBaseMs;
    this.#backoffCapMs = backoffCapMs;
    this.#langQuery = lang ? `lang=${encodeURIComponent(lang)}&` : '';
  }

  get lastEventId() {
    return this.#streamId;
  }

  get transport() {
    return this.#transports[this.#transportIndex];
  }

  get state() {
    return this.#state;
  }

  get userId() {
    return this.#userId;
  }

  start() {
    if (this.#running) return;
    this.#userId = userIdFromToken(this.#getToken()) ?? this.#givenUserId ?? 'anonymous';
    this.#streamId = this.#floor = readStorage(this.#storageKey);
    this.#seen.clear();
    this.#resyncedAt = undefined;
    this.#transportIndex = 0;
    this.#openFailures = 0;
    this.#attempt = 0;
    this.#running = true;
    this.#listen();
    this.#connect();
  }

  stop() {
    if (!this.#running) return;
    this.#running = false;
    this.#generation++;
    clearTimeout(this.#timer);
    this.#closeConnection();
    this.#unlisten();
    this.#setState('closed');
  }

  get #storageKey() {
    return `${this.#storagePrefix}:lastEventId:${this.#userId}`;
  }

  // ---- page lifecycle -------------------------------------------------------------------------

  #listen() {
    if (typeof BroadcastChannel === 'function') {
      this.#channel = new BroadcastChannel(CHANNEL_NAME);
      this.#channel.onmessage = ({ data }) => {
        if (data?.userId === this.#userId && data.event) this.#deliver(data.event);
      };
    }
    globalThis.document?.addEventListener('visibilitychange', this.#onVisibilityChange);
    globalThis.addEventListener?.('online', this.#onOnline);
  }

  #unlisten() {
    this.#channel?.close();
    this.#channel = null;
    globalThis.document?.removeEventListener('visibilitychange', this.#onVisibilityChange);
    globalThis.removeEventListener?.('online', this.#onOnline);
  }

  #onVisibilityChange = () => {
    if (document.visibilityState === 'hidden') {
      this.#hiddenAt = Date.now();
      return;
    }
    const longAway = this.#hiddenAt && Date.now() - this.#hiddenAt > STALE_AFTER_HIDDEN_MS;
    this.#hiddenAt = 0;
    // An "open" socket may be dead after a long background period; resuming by id makes a fresh one free.
    if (this.#state !== 'open' || longAway || this.transport === 'poll') this.#reconnectNow();
  };

  #onOnline = () => {
    // Failures while offline say nothing about sockets being blocked: try the preferred transport again.
    this.#transportIndex = 0;
    this.#openFailures = 0;
    this.#reconnectNow();
  };

  #reconnectNow() {
    if (!this.#running) return;
    this.#attempt = 0;
    this.#connect();
  }

  // ---- connecting -----------------------------------------------------------------------------

  async #connect() {
    clearTimeout(this.#timer);
    this.#closeConnection();
    if (!this.#running) return;
    const generation = ++this.#generation;
    this.#setState('connecting');
    if (this.transport === 'poll') {
      this.#needBaseline = !this.#streamId;
      this.#poll(generation);
      return;
    }
    try {
      if (!this.#streamId && !(await this.#takeBaseline(generation))) return;
      const { ticket } = await hubRequest(this.#baseUrl, this.#getToken(), `/v1/notifications/ticket?${this.#langQuery}`, { method: 'POST' });
      if (generation !== this.#generation) return;
      if (this.transport === 'ws') this.#openSocket(ticket, generation);
      else this.#openEventSource(ticket, generation);
    } catch (error) {
      if (generation === this.#generation) this.#onRequestError(error);
    }
  }

  /**
   * A feed opened without a resume point starts at the hub's "now"; if that first connection dropped
   * before any event came, the next one would start at a later "now" and skip what happened between.
   * So a client with no point takes the hub's newest id first (history is not news: it is not shown).
   * Returns false when this connection attempt was superseded meanwhile.
   */
  async #takeBaseline(generation) {
    const { lastEventId } = await hubRequest(this.#baseUrl, this.#getToken(), '/v1/notifications');
    if (generation !== this.#generation) return false;
    if (lastEventId && !this.#streamId) this.#advance(lastEventId);
    return true;
  }

  #openSocket(ticket, generation) {
    const socket = new WebSocket(this.#streamUrl('/v1/notifications/ws', ticket, true));
    const watch = this.#watchOpen(generation, () => socket.close());
    socket.onopen = watch.opened;
    socket.onmessage = ({ data }) => {
      if (generation === this.#generation && typeof data === 'string') this.#onFrame(data);
    };
    // 'error' is always followed by 'close', so close alone decides what happens next.
    socket.onclose = watch.dropped;
    this.#connection = {
      close: () => {
        watch.cancel();
        socket.onclose = socket.onmessage = socket.onopen = null;
        socket.close();
      },
    };
  }

  #openEventSource(ticket, generation) {
    const source = new EventSource(this.#streamUrl('/v1/notifications/stream', ticket, false));
    const watch = this.#watchOpen(generation, () => source.close());
    const onMessage = ({ data, lastEventId }) => {
      if (generation === this.#generation) this.#onFrame(data, lastEventId);
    };
    source.onopen = watch.opened;
    source.onmessage = onMessage;
    // Also accept named SSE events (`event: report.completed`); ids keep a frame from counting twice.
    for (const type of [...EVENT_TYPES, 'resync']) source.addEventListener(type, onMessage);
    // The ticket is single use, so EventSource's own retry cannot succeed: reconnect ourselves.
    source.onerror = () => {
      source.close();
      watch.dropped();
    };
    this.#connection = {
      close: () => {
        watch.cancel();
        source.onerror = null;
        source.close();
      },
    };
  }

  /** Tracks one connection attempt: when it opened, and whether it failed before opening. */
  #watchOpen(generation, abort) {
    let openedAt = 0;
    let done = false;
    const timeout = setTimeout(() => {
      abort();
      dropped();
    }, OPEN_TIMEOUT_MS);
    const opened = () => {
      clearTimeout(timeout);
      if (generation !== this.#generation) return;
      openedAt = Date.now();
      this.#onOpen();
    };
    const dropped = () => {
      clearTimeout(timeout);
      if (done || generation !== this.#generation) return;
      done = true;
      this.#connection = null;
      this.#onDrop(openedAt ? Date.now() - openedAt : null);
    };
    return { opened, dropped, cancel: () => clearTimeout(timeout) };
  }

  #streamUrl(path, ticket, websocket) {
    const url = new URL(this.#streamBaseUrl + path, globalThis.location?.href);
    if (websocket) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('ticket', ticket);
    if (this.#streamId) url.searchParams.set('lastEventId', this.#streamId);
    return url.href;
  }

  #onOpen() {
    this.#openFailures = 0;
    this.#setState('open');
  }

  /** @param openFor how long the connection was open in ms, or null if it never opened */
  #onDrop(openFor) {
    this.#setState('closed');
    this.#resyncedAt = undefined; // a new connection that is told to resync means we missed more
    if (openFor === null && globalThis.navigator?.onLine !== false) this.#openFailures++;
    if (openFor !== null && openFor >= STABLE_MS) this.#attempt = 0;
    if (this.#openFailures >= this.#maxOpenFailures && this.#transportIndex < this.#transports.length - 1) {
      // The network lets HTTP through but not this transport (proxy, firewall): step down.
      this.#transportIndex++;
      this.#openFailures = 0;
      this.#attempt = 0;
      this.dispatchEvent(new CustomEvent('status', { detail: this.transport }));
      this.#connect();
      return;
    }
    this.#scheduleReconnect();
  }

  #onRequestError(error) {
    if (error.status === 401) {
      this.stop();
      this.dispatchEvent(new CustomEvent('unauthorized', { detail: error }));
      return;
    }
    this.#setState('closed');
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    clearTimeout(this.#timer);
    if (!this.#running) return;
    const ceiling = Math.min(this.#backoffCapMs, this.#backoffBaseMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 16);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter spreads a fleet of reconnecting clients
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  #closeConnection() {
    this.#connection?.close();
    this.#connection = null;
  }

  // ---- polling --------------------------------------------------------------------------------

  async #poll(generation) {
    let result;
    try {
      const after = this.#streamId ? `after=${encodeURIComponent(this.#streamId)}` : '';
      result = await hubRequest(this.#baseUrl, this.#getToken(), `/v1/notifications?${this.#langQuery}${after}`);
    } catch (error) {
      if (generation === this.#generation) this.#onRequestError(error);
      return;
    }
    if (generation !== this.#generation) return;
    if (this.#state !== 'open') this.#onOpen();
    this.#attempt = 0;
    const events = Array.isArray(result.events) ? result.events : [];
    if (result.resync || this.#needBaseline) {
      // Without a usable position the hub answers with its latest events: that history is already
      // reflected in job state over REST, so it only sets our position and is not shown as news.
      // A resync with nothing kept at all (the log expired) leaves nothing to re-read.
      if (result.resync && events.length) this.#onResync();
      this.#needBaseline = false;
      const newest = result.lastEventId || events.at(-1)?.id;
      if (newest) this.#advance(newest);
    } else {
      for (const event of events) this.#onEvent(event);
    }
    this.#timer = setTimeout(() => this.#poll(generation), this.#pollIntervalMs);
  }

  // ---- events ---------------------------------------------------------------------------------

  #onFrame(text, sseId) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return; // not ours to interpret; one bad frame must not break the stream
    }
    if (!event || typeof event !== 'object') return;
    if (event.type === 'resync') this.#onResync();
    else this.#onEvent(event.id ? event : { ...event, id: sseId });
  }

  /** An event from this tab's own connection, which the hub sends in id order. */
  #onEvent(event) {
    if (!event?.id || (this.#streamId && compareEventIds(event.id, this.#streamId) <= 0)) return;
    this.#advance(event.id);
    if (this.#deliver(event)) this.#channel?.postMessage({ userId: this.#userId, event });
  }

  #advance(id) {
    this.#streamId = id;
    // Other tabs may be further along; the shared value only ever moves forward.
    if (compareEventIds(id, readStorage(this.#storageKey)) > 0) writeStorage(this.#storageKey, id);
  }

  /** Shows an event unless this tab has shown it already (it can arrive by socket and by channel). */
  #deliver(event) {
    const id = event.id;
    if (!id || this.#seen.has(id) || (this.#floor && compareEventIds(id, this.#floor) <= 0)) return false;
    this.#seen.add(id);
    if (this.#seen.size > SEEN_LIMIT) {
      const oldest = [...this.#seen].sort(compareEventIds).slice(0, this.#seen.size - SEEN_LIMIT);
      for (const old of oldest) this.#seen.delete(old);
      this.#floor = oldest.at(-1); // forgotten ids must still count as shown
    }
    this.dispatchEvent(new CustomEvent('event', { detail: event }));
    return true;
  }

  #onResync() {
    if (this.#resyncedAt === this.#streamId) return;
    this.#resyncedAt = this.#streamId;
    this.dispatchEvent(new CustomEvent('resync'));
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.dispatchEvent(new CustomEvent('status', { detail: state }));
  }
}
