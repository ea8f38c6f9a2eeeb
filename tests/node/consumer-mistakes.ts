// Each marked line holds one mistake a consumer could make; each must be a compile error.
import { HubClient } from '@diksha/course-report-hub-client';

const client = new HubClient({ getToken: () => 'token' });
client.addEventListener('evnt', () => undefined); // error: no such event
client.addEventListener('event', (e) => e.detail.downloadURL); // error: no such field on any event
client.addEventListener('event', (e) => e.detail.downloadUrl); // error: only report.completed has it
client.addEventListener('event', (e) => {
  if (e.detail.type === 'report.complete') return; // error: no such event type
  if (e.detail.type === 'report.failed') return e.detail.percent; // error: a failure has no percent
});
new HubClient({ getToken: () => 42 }); // error: a token is a string
new HubClient({ transports: ['websocket'] }); // error: no such transport
new HubClient({ pollInterval: 3000 }); // error: no such option
client.pause(true); // error: pause takes nothing
const state: 'open' | 'closed' = client.state; // error: a state can also be connecting, offline, paused
void state;
