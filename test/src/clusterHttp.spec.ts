import { clusterHttpRoutes, roleMetric, roleText } from '../../src/clusterHttp.js';
import type { ClusterRole } from '../../src/natsCluster.js';
import type { Service } from '../../src/service.js';
import type { HttpResponse } from '../../streams/wsNetwork.js';

/** A response that records what was written, and resolves once it ends. */
function response(): HttpResponse & { status: number; headers: Record<string, string>; body: Promise<string> } {
  let end!: (body: string) => void;
  const out = {
    headersSent: false,
    status: 0,
    headers: {} as Record<string, string>,
    body: new Promise<string>(resolve => (end = resolve)),
    writeHead(status: number, headers: Record<string, string> = {}) {
      out.status = status;
      out.headers = headers;
    },
    end(body: string | Uint8Array = '') {
      end(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
    },
  };
  return out;
}

const standby: ClusterRole = { type: 'standby', reason: 'held by a2', leader: { id: 'a2', host: 'm2', pid: 42, nonce: 'n' } };
const leader: ClusterRole = { type: 'leader', term: 7, recordsSinceSnapshot: 0, journalSequence: 3 };
const service = { metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', text: async () => 'rxswarm_agents 3\n' } } as unknown as Service;

describe('clusterHttpRoutes', () => {
  it('/metrics on the leader: its service\'s metrics and rxswarm_cluster_leader 1; on a standby: 0 alone; with the token', async () => {
    let role: ClusterRole = leader;
    const routes = clusterHttpRoutes({ id: 'a1', get current() { return role; }, get leaderService() { return role.type === 'leader' ? service : undefined; } }, { token: 'secret' });
    const denied = response();
    routes({ method: 'GET', url: '/metrics', headers: {} }, denied);
    expect(await denied.body).toMatch(/token is required/);
    expect(denied.status).toBe(401);
    const led = response();
    routes({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer secret' } }, led);
    expect(await led.body).toMatch(/^rxswarm_agents 3\n[\s\S]*rxswarm_cluster_leader\{node="a1"\} 1\n$/);
    role = standby;
    const stood = response();
    routes({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer secret' } }, stood);
    const text = await stood.body;
    expect(text).toMatch(/rxswarm_cluster_leader\{node="a1"\} 0\n$/);
    expect(text).not.toMatch(/rxswarm_agents/);
  });

  it('/ says the node\'s role and who leads, and where the live view is', async () => {
    const routes = clusterHttpRoutes({ id: 'a1', current: standby, leaderService: undefined }, { token: 'secret' });
    const page = response();
    routes({ method: 'GET', url: '/', headers: {} }, page);
    expect(page.status).toBe(200);
    expect(await page.body).toBe(roleText('a1', standby));
    expect(roleText('a1', standby)).toMatch(/^rxswarm cluster node a1: standby \(held by a2\)\nleader: a2 on m2 \(pid 42\)/);
    expect(roleText('a1', leader)).toMatch(/^rxswarm cluster node a1: leader \(lease revision 7\)\n\nThe live dashboard/);
    const missing = response();
    routes({ method: 'GET', url: '/app.js', headers: {} }, missing);
    expect(missing.status).toBe(404);
  });

  it('escapes the node id in the label', () => {
    expect(roleMetric('a"b\\c', leader)).toContain('rxswarm_cluster_leader{node="a\\"b\\\\c"} 1');
  });
});
