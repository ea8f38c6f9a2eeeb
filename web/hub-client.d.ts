// Types of hub-client.js (hand-written: the source ships as it is, with no build step).

/** Fields every user-facing event carries. */
interface HubEventBase {
  /** Per-user, strictly increasing (a Redis stream id `<ms>-<seq>`); usable as `lastEventId`. */
  id: string;
  /** ISO 8601 instant the event was made. */
  ts: string;
  jobId: string;
  batchId: string;
  /** A sentence for people, in the language asked with `lang` (English otherwise). */
  message?: string;
  /** A stable key of `message`, for apps that show their own translation. */
  messageKey?: string;
  /** The job's short reference, for the person to quote to support. */
  ref?: string;
  /** Set when support pushed the event again on purpose (such an ending is emitted even after the first). */
  replayed?: boolean;
}

export interface ReportSubmittedEvent extends HubEventBase {
  type: 'report.submitted';
}

export interface ReportProgressEvent extends HubEventBase {
  type: 'report.progress';
  rows: number;
  total: number;
  /** 0-100. */
  percent: number;
  /** Set while the job waits for a free worker (every worker busy); then `position` and `promisedBy` too. */
  queued?: boolean;
  /** Its place among the jobs no worker has taken yet, 1 for next. */
  position?: number;
  /** ISO 8601 instant by which the report is promised (the click's time plus the promise for its size). */
  promisedBy?: string;
}

export interface ReportCompletedEvent extends HubEventBase {
  type: 'report.completed';
  /** A signed link that expires at `expiresAt`; `HubClient.download` swaps an old one for a fresh one. */
  downloadUrl: string;
  expiresAt: string;
  fileName: string;
  rows: number;
  bytes: number;
}

export interface ReportFailedEvent extends HubEventBase {
  type: 'report.failed';
  /** A code, such as `SOURCE_ERROR`, `TIMED_OUT`, `WORKER_LOST` or `NO_WORKER`. */
  reason: string;
}

export interface ReportDuplicateEvent extends HubEventBase {
  type: 'report.duplicate';
}

export type HubEvent =
  | ReportSubmittedEvent
  | ReportProgressEvent
  | ReportCompletedEvent
  | ReportFailedEvent
  | ReportDuplicateEvent;

export type HubEventType = HubEvent['type'];

export type Transport = 'ws' | 'sse' | 'poll';

export type ConnectionState = 'connecting' | 'open' | 'closed' | 'offline' | 'paused';

/** What `getToken` is told: `refresh` is true when the last token was refused (HTTP 401 or close code 4001). */
export interface TokenRequest {
  refresh: boolean;
}

/** A job as `GET /v1/reports/jobs/{jobId}` answers it. */
export interface ReportJob {
  jobId: string;
  batchId: string;
  requestedBy: string;
  status: 'SUBMITTED' | 'PROCESSING' | 'SUCCESS' | 'FAILED';
  submittedAt: string;
  startedAt?: string | null;
  completedAt?: string | null;
  rows?: number | null;
  bytes?: number | null;
  fileName?: string | null;
  downloadUrl?: string | null;
  expiresAt?: string | null;
  error?: string | null;
}

/** What `download` accepts: a `report.completed` event, a job, or a link with its file name. */
export interface Downloadable {
  jobId?: string;
  downloadUrl?: string | null;
  fileName?: string | null;
  expiresAt?: string | null;
}

export interface HubClientOptions {
  /** Where the calls go (ticket, polling, REST): the hub, or the portal's proxy path (`/report-hub`). Default: same origin. */
  baseUrl?: string;
  /** Where the WebSocket and the event stream go, when not `baseUrl` (a proxy that cannot upgrade). */
  streamUrl?: string;
  /**
   * The user's access token, or a Promise of it (`keycloak.updateToken(30).then(() => keycloak.token)`).
   * Called for every connection; `refresh` asks for a new one after a refusal. Leave it out behind a
   * proxy that adds the token itself (gateway mode).
   */
  getToken?: (request: TokenRequest) => string | Promise<string>;
  /** Gateway mode: the user's id, which keys the resume point kept in `localStorage`. */
  userId?: string;
  /** fetch's `credentials` for calls; `include` for a proxy on another origin. Default `same-origin`. */
  credentials?: RequestCredentials;
  /** The language of events' `message` (`hi`, `ta`, ...); unset, the browser's `Accept-Language`. */
  lang?: string;
  /** Prefix of the `localStorage` keys. Default `hub`. */
  storagePrefix?: string;
  /** Transports in the order they are tried; a blocked one steps down to the next. Default `['ws', 'sse', 'poll']`. */
  transports?: Transport[];
  /** Polling pace while the page is visible, in ms. Default 3000. */
  pollIntervalMs?: number;
  /** Polling pace while the page is hidden, in ms. Default 30000. */
  hiddenPollIntervalMs?: number;
  /** Failed opens in a row before stepping down to the next transport. Default 3. */
  maxOpenFailures?: number;
  /** Reconnect backoff: first delay and ceiling, in ms (with jitter). Defaults 1000 and 30000. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** The hub's heartbeat when its ticket answer does not say it, in ms. Default 20000. */
  heartbeatMs?: number;
  /** Heartbeats a connection may miss before it is taken for dead and replaced. Default 2.5. */
  silentHeartbeats?: number;
  /** Called instead of a link by `download` (the app's download manager). */
  onDownload?: (url: string, fileName: string) => void | Promise<void>;
}

export interface HubClientEventMap {
  event: CustomEvent<HubEvent>;
  resync: CustomEvent<null>;
  status: CustomEvent<ConnectionState | Transport>;
  unauthorized: CustomEvent<HubError>;
}

export type HubClientListener<K extends keyof HubClientEventMap> =
  | ((event: HubClientEventMap[K]) => void)
  | { handleEvent(event: HubClientEventMap[K]): void };

export declare class HubClient {
  constructor(options?: HubClientOptions);
  readonly lastEventId: string | null;
  readonly transport: Transport;
  readonly state: ConnectionState;
  /** Known once the first token was read (or from `userId`). */
  readonly userId: string | null;
  start(): void;
  stop(): void;
  /** Cordova's `pause`: closes the connection until `resume`. */
  pause(): void;
  /** Cordova's `resume`: reconnects and catches up from the last event id. */
  resume(): void;
  /** Saves a report's file through `onDownload`, or as a browser download. */
  download(target: Downloadable): Promise<void>;
  /** A /v1 call with this client's token (or the proxy's session); resolves to the envelope's `result`. */
  request<T = Record<string, unknown>>(path: string, options?: RequestOptions): Promise<T>;
  addEventListener<K extends keyof HubClientEventMap>(type: K, listener: HubClientListener<K>): void;
  removeEventListener<K extends keyof HubClientEventMap>(type: K, listener: HubClientListener<K>): void;
  dispatchEvent(event: Event | { type: string; detail?: unknown }): boolean;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  body?: unknown;
  credentials?: RequestCredentials;
}

/** An error answer of the hub (status 0 and code `NETWORK_ERROR` when it could not be reached). */
export declare class HubError extends Error {
  constructor(message: string, details?: { status?: number; code?: string | null; result?: unknown });
  readonly status: number;
  /** The envelope's `params.err`, such as `DOWNLOAD_IN_PROGRESS`. */
  readonly code: string | null;
  /** The envelope's `result` (for `DOWNLOAD_IN_PROGRESS`, `{jobId}` of the running job). */
  readonly result: unknown;
}

export declare function hubRequest<T = Record<string, unknown>>(
  baseUrl: string,
  token: string | null | undefined,
  path: string,
  options?: RequestOptions,
): Promise<T>;

/** The JWT's claims, unverified; null when the text is not a JWT. */
export declare function decodeJwt(token: string | null | undefined): Record<string, unknown> | null;
export declare function userIdFromSub(sub: string): string;
export declare function userIdFromToken(token: string | null | undefined): string | null;
/** Orders event ids numerically: negative, zero or positive. */
export declare function compareEventIds(a: string | null | undefined, b: string | null | undefined): number;
