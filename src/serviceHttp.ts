import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tokensMatch, type HttpRequest, type HttpResponse } from '../streams/wsNetwork.js';

/** The dashboard's files, built at install (`npm run build` → dist/dashboard), by URL path. */
export interface DashboardAssets {
  readonly files: ReadonlyMap<string, { readonly type: string; readonly body: Buffer }>;
  /** Hashes of the page's inline script and style (`sha256-…`), for its content security policy. */
  readonly inline?: { readonly script: readonly string[]; readonly style: readonly string[] };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * Where the built dashboard is: `RXSWARM_DASHBOARD_DIR` when set (a build of one's own, e.g.
 * `node scripts/buildDashboard.mjs /tmp/page` while changing it), else beside the compiled service (dist/src → dist/dashboard), or,
 * running from the sources, in dist/dashboard of the checkout. Undefined when it was not built.
 */
export function dashboardDir(): string | undefined {
  const given = process.env['RXSWARM_DASHBOARD_DIR'];
  if (given !== undefined && given !== '') return given.endsWith('/') ? given : `${given}/`;
  for (const relative of ['../dashboard/', '../dist/dashboard/']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}app.js`)) return dir; // dashboard/ of a checkout holds the sources, not app.js
  }
  return undefined;
}

/** Reads the built dashboard into memory once (a few hundred KB): requests never touch the disk. */
export function loadDashboard(dir = dashboardDir()): DashboardAssets | undefined {
  if (dir === undefined) return undefined;
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of ['index.html', 'app.js', 'app.css']) {
    if (!existsSync(dir + name)) continue;
    files.set(name === 'index.html' ? '/' : `/${name}`, { type: TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream', body: readFileSync(dir + name) });
  }
  if (!existsSync(`${dir}inline.json`)) return { files };
  const inline = JSON.parse(readFileSync(`${dir}inline.json`, 'utf8')) as { script?: unknown; style?: unknown };
  const hashes = (value: unknown): string[] => (Array.isArray(value) ? value.filter((h): h is string => typeof h === 'string' && /^sha256-[A-Za-z0-9+/=]+$/.test(h)) : []);
  return { files, inline: { script: hashes(inline.script), style: hashes(inline.style) } };
}

export interface HttpRoutesOptions {
  readonly token: string;
  /** `/metrics` without the token (for a scraper on a trusted network). Default false. */
  readonly metricsPublic?: boolean;
  readonly dashboard: DashboardAssets | undefined;
  readonly metrics: () => Promise<{ readonly type: string; readonly text: string }>;
}

// The page connects back to its own origin only, runs only its own script, and is never framed.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  // Each request on its own connection: a connection that has not upgraded is dropped at the
  // handshake bound anyway, so keeping it alive would only race that bound.
  connection: 'close',
};

/**
 * The service's HTTP routes, for `WsServerNetwork`'s `onHttpRequest`: `GET /` the dashboard
 * (its files carry no secret: the page asks for the token and sends it in its WebSocket hello),
 * `GET /metrics` the Prometheus text format (with `Authorization: Bearer TOKEN`, unless
 * `metricsPublic`). Anything else: 404; other methods: 405. Nothing reads a request body.
 *
 * @example new WsServerNetwork({ token, onHttpRequest: httpRoutes({ token, dashboard: loadDashboard(), metrics }) })
 */
export function httpRoutes({ token, metricsPublic = false, dashboard, metrics }: HttpRoutesOptions): (request: HttpRequest, response: HttpResponse) => boolean {
  const answer = (response: HttpResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): true => {
    response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': String(Buffer.byteLength(body)), ...extra });
    response.end(body);
    return true;
  };
  // The page's own inline script and style, by hash: nothing else inline runs.
  const inline = dashboard?.inline;
  const csp = inline === undefined ? undefined : SECURITY_HEADERS['content-security-policy'].replace("script-src 'self'", `script-src 'self'${inline.script.map(h => ` '${h}'`).join('')}`).replace("style-src 'self'", `style-src 'self'${inline.style.map(h => ` '${h}'`).join('')}`);
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0] as string;
    if (request.method !== 'GET' && request.method !== 'HEAD') return answer(response, 405, 'text/plain; charset=utf-8', 'only GET\n', { allow: 'GET, HEAD' });
    if (path === '/metrics') {
      const header = request.headers['authorization'];
      const given = typeof header === 'string' ? /^Bearer (.+)$/i.exec(header)?.[1] : undefined;
      if (!metricsPublic && (given === undefined || !tokensMatch(token, given))) {
        return answer(response, 401, 'text/plain; charset=utf-8', 'the token is required: Authorization: Bearer TOKEN (or serve --metrics-public)\n', { 'www-authenticate': 'Bearer realm="rxswarm"' });
      }
      metrics().then(
        ({ type, text }) => answer(response, 200, type, text),
        (err: unknown) => answer(response, 500, 'text/plain; charset=utf-8', `metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
      );
      return true;
    }
    const file = dashboard?.files.get(path === '/index.html' ? '/' : path);
    if (file !== undefined) return answer(response, 200, file.type, request.method === 'HEAD' ? '' : file.body, csp === undefined ? {} : { 'content-security-policy': csp });
    if (path === '/') return answer(response, 503, 'text/plain; charset=utf-8', 'the dashboard was not built: run `npm run build` in the rxswarm package\n');
    return answer(response, 404, 'text/plain; charset=utf-8', 'not found\n');
  };
}
