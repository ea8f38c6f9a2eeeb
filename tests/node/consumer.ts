// How the portal (gateway mode) and the app (token mode) use the client; type-checked with --strict.
import {
  HubClient,
  HubError,
  compareEventIds,
  decodeJwt,
  hubRequest,
  userIdFromToken,
  type ConnectionState,
  type HubEvent,
  type ReportJob,
} from '@diksha/course-report-hub-client';

declare const keycloak: { token: string; updateToken(minValidity: number): Promise<boolean> };

const app = new HubClient({
  baseUrl: 'https://diksha.gov.in/report-hub',
  getToken: ({ refresh }) => keycloak.updateToken(refresh ? -1 : 30).then(() => keycloak.token),
  transports: ['ws', 'sse', 'poll'],
  pollIntervalMs: 3000,
  hiddenPollIntervalMs: 30000,
  maxOpenFailures: 3,
  backoffBaseMs: 1000,
  backoffCapMs: 30000,
  heartbeatMs: 20000,
  silentHeartbeats: 2.5,
  storagePrefix: 'app',
  lang: 'hi',
  onDownload: (url: string, fileName: string) => Promise.resolve(void [url, fileName]),
});

const portal = new HubClient({
  baseUrl: '/report-hub',
  streamUrl: 'https://diksha.gov.in/report-hub',
  userId: 'user-1',
  credentials: 'include',
  getToken: () => 'a string works too',
});

function show(event: HubEvent): string {
  switch (event.type) {
    case 'report.completed':
      return `${event.fileName} ${event.downloadUrl} ${event.expiresAt} ${event.rows} ${event.bytes}`;
    case 'report.failed':
      return event.reason;
    case 'report.progress':
      return event.queued ? `#${event.position ?? 0} by ${event.promisedBy ?? ''}` : `${event.percent}% ${event.rows}/${event.total}`;
    case 'report.submitted':
    case 'report.duplicate':
      return `${event.message ?? ''} ${event.messageKey ?? ''} ${event.ref ?? ''} ${event.replayed ?? false}`;
  }
}

app.addEventListener('event', (e) => {
  const text: string = show(e.detail) + e.detail.id + e.detail.jobId + e.detail.batchId + e.detail.ts;
  if (e.detail.type === 'report.completed') void app.download(e.detail).then(() => text);
});
app.addEventListener('status', (e) => {
  const state: ConnectionState | 'ws' | 'sse' | 'poll' = e.detail;
  return state;
});
app.addEventListener('resync', () => undefined);
app.addEventListener('unauthorized', (e) => {
  const error: HubError = e.detail;
  return [error.status, error.code, error.result, error.message];
});
const listener = { handleEvent: (e: CustomEvent<HubEvent>) => e.detail.id };
portal.addEventListener('event', listener);
portal.removeEventListener('event', listener);

app.start();
app.pause();
app.resume();
app.stop();
const last: string | null = app.lastEventId;
const who: string | null = app.userId;
const state: ConnectionState = app.state;
const transport: 'ws' | 'sse' | 'poll' = app.transport;
void [last, who, state, transport];

async function lists(): Promise<ReportJob[]> {
  const { jobs } = await portal.request<{ jobs: ReportJob[] }>('/v1/reports/jobs?batchId=b1');
  await portal.download({ jobId: jobs[0].jobId, downloadUrl: jobs[0].downloadUrl, fileName: jobs[0].fileName });
  await hubRequest('https://hub.example.org', keycloak.token, '/v1/reports/course-progress', { method: 'POST', body: { batchId: 'b1' } });
  return jobs;
}
void lists;

const order: number = compareEventIds('1-0', '2-0');
const claims: Record<string, unknown> | null = decodeJwt(keycloak.token);
const id: string | null = userIdFromToken(keycloak.token);
void [order, claims, id, new HubError('x', { status: 409, code: 'DOWNLOAD_IN_PROGRESS' })];
