import type { HttpRequest, HttpResponse } from '../streams/wsNetwork.js';
import type { ClusterRole, NatsClusterNode } from './natsCluster.js';
import { httpRoutes } from './serviceHttp.js';

export interface ClusterHttpOptions {
  readonly token: string;
  /** `/metrics` without the token. Default false. */
  readonly metricsPublic?: boolean;
}

/** Prometheus' text format: what the registry of a node that does not lead would say (nothing but its role). */
const TEXT_FORMAT = 'text/plain; version=0.0.4; charset=utf-8';

/** The role gauge of a node, in the text format. */
export function roleMetric(id: string, role: ClusterRole): string {
  const node = id.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  return `# HELP rxswarm_cluster_leader 1 while this node leads the coordinator cluster (its service runs), 0 while it stands by or reads the journal.\n# TYPE rxswarm_cluster_leader gauge\nrxswarm_cluster_leader{node="${node}"} ${role.type === 'leader' ? 1 : 0}\n`;
}

/** What `/` says of a node: its role, who leads, and where to look. */
export function roleText(id: string, role: ClusterRole): string {
  const lines = [`rxswarm cluster node ${id}: ${role.type === 'leader' ? `leader (lease revision ${role.term})` : role.type === 'elected' ? 'elected, reading the journal' : `standby (${role.reason})`}`];
  if (role.type === 'standby') lines.push(role.leader === undefined ? 'leader: none known to this node yet' : `leader: ${role.leader.id} on ${role.leader.host} (pid ${role.leader.pid}): its /metrics has the coordinator's metrics`);
  lines.push(
    '',
    'The live dashboard is served by `rxswarm serve` over WebSocket; a cluster on NATS does not serve it yet.',
    'Over NATS: `rxswarm status --nats URL` (agents, tasks, what needs attention, the leader and the standbys), `rxswarm tasks --nats URL`.',
    '/metrics: the coordinator\'s metrics on the leader (Prometheus text format), and on every node rxswarm_cluster_leader.',
  );
  return `${lines.join('\n')}\n`;
}

/**
 * HTTP routes of a cluster node (`rxswarm serve --nats URL --port P`): `GET /metrics` — on the
 * leader, its service's metrics; on every node, `rxswarm_cluster_leader{node}` (1 on the leader), so
 * a scraper of every node finds the leader's metrics and knows which node gave them — with the
 * token as for `serve` (`Authorization: Bearer TOKEN`, unless `metricsPublic`); `GET /` a text page
 * with the node's role and who leads (the live dashboard needs the coordinator's WebSocket).
 *
 * @example http.createServer(clusterHttpRoutes(node, { token })).listen(7070)
 */
export function clusterHttpRoutes(node: Pick<NatsClusterNode, 'id' | 'current' | 'leaderService'>, { token, metricsPublic = false }: ClusterHttpOptions): (request: HttpRequest, response: HttpResponse) => boolean {
  const routes = httpRoutes({
    token,
    metricsPublic,
    dashboard: undefined,
    metrics: async () => {
      // Read once: the role and the service it goes with.
      const role = node.current;
      const service = role.type === 'leader' ? node.leaderService : undefined;
      if (service === undefined) return { type: TEXT_FORMAT, text: roleMetric(node.id, role) };
      return { type: service.metrics.contentType, text: `${await service.metrics.text()}\n${roleMetric(node.id, role)}` };
    },
  });
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if ((path === '/' || path === '/index.html') && (request.method === 'GET' || request.method === 'HEAD')) {
      const body = roleText(node.id, node.current);
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? '' : body);
      return true;
    }
    return routes(request, response);
  };
}
