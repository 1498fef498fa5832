import { render } from 'preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { compareTasks, type TaskRow } from '../src/swarmRows.js';
import type { PageMeasures } from '../src/swarmWire.js';
import { Sparkline, Timeline, TopologyGraph } from './charts.js';
import { connect, connectEarly, lastFrame, Store, type AgentEntry, type ConnectionState, type EarlyLink, type Handlers, type Link, type StateMessage } from './store.js';
import type { SubtaskTable } from './subtaskTable.js';
import { VirtualList } from './virtualList.js';

const measures: PageMeasures = { firstRenderMs: null, allRowsMs: null, lags: [], batches: 0, renders: 0, marks: {} };
const mark = (name: string): void => void (measures.marks[name] ??= Math.round(performance.now()));
(window as unknown as { __rxswarm: PageMeasures }).__rxswarm = measures;

const TOKEN_KEY = 'rxswarm-token';

/** The token, asked once: from the URL's `#token=` (then removed from the address bar) or this tab's storage. */
function initialToken(): string | undefined {
  const fromHash = /(?:^#|&)token=([^&]+)/.exec(location.hash)?.[1];
  if (fromHash !== undefined) {
    const token = decodeURIComponent(fromHash);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

// The connection opens as the script starts, before the first render: with a coordinator busy
// with a run each step of its handshake waits for the coordinator's event loop, and that wait
// now overlaps drawing the empty page. The App takes it over.
let early: EarlyLink | undefined = (() => {
  const token = initialToken();
  return token === undefined ? undefined : connectEarly(token);
})();

const ago = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`);
const pct = (x: number): string => `${Math.round(x * 100)}%`;

function App() {
  const store = useMemo(() => new Store(), []);
  const [token, setToken] = useState(initialToken);
  const [connection, setConnection] = useState<ConnectionState>({ status: token === undefined ? 'asking' : 'connecting' });
  const [version, setVersion] = useState(0);
  const [selectedTask, setSelectedTask] = useState<string | undefined>();
  const [focus, setFocus] = useState<{ taskId: string; subtaskId: string } | undefined>();
  const [stateFilter, setStateFilter] = useState('');
  const [agentFilter, setAgentFilter] = useState('');
  const [notice, setNotice] = useState('');
  const link = useRef<Link | undefined>(undefined);
  const frame = useRef<number | undefined>(undefined);
  const rowsIn = useRef(false);
  const focusRef = useRef(focus);
  focusRef.current = focus;

  // Connects as soon as the page is drawn the first time (a layout effect: not a frame later).
  useLayoutEffect(() => {
    if (token === undefined) return undefined;
    // Batches are applied as they come and drawn at most once a frame.
    const onState = (m: StateMessage): void => {
      const rows = (m.columns?.length ?? 0) > 0;
      const first = m.full ? 'state' : rows ? 'rows' : undefined;
      if (first !== undefined) {
        mark(`${first} received`);
        // How long the frame took from the service's hands to here (the same machine's clock).
        measures.marks[`${first} frame age`] ??= Date.now() - m.at;
        measures.marks[`${first} frame KB`] ??= Math.round(lastFrame.chars / 1024);
        measures.marks[`${first} frame parse`] ??= Math.round(lastFrame.parseMs);
      }
      store.apply(m);
      if (first !== undefined) mark(`${first} applied`);
      measures.batches++;
      if (rows || (m.subtasks?.length ?? 0) > 0) rowsIn.current = true;
      // Everything anew is drawn at once; changes at most once a frame.
      if (m.full) setVersion(store.version);
      else if (frame.current === undefined) frame.current = requestAnimationFrame(() => {
        frame.current = undefined;
        setVersion(store.version);
      });
    };
    const handlers: Handlers = {
      state: onState,
      status: s => {
        setConnection(s);
        if (s.status === 'refused') sessionStorage.removeItem(TOKEN_KEY);
      },
      cancelled: body => setNotice(body.ok ? `task ${body.taskId} cancelled` : `could not cancel ${body.taskId}: ${body.error ?? ''}`),
      joined: () => mark('joined'),
      // Sent right behind the hello (the server takes a connection's frames in order): no round trip more.
      first: () => ['watch', { live: true, subtasks: true, ...(focusRef.current === undefined ? {} : { focus: focusRef.current }) }],
    };
    const opened = early;
    early = undefined;
    if (opened?.token === token) {
      opened.attach(handlers);
      link.current = opened.link;
    } else {
      opened?.link.close();
      link.current = connect(token, handlers);
    }
    return () => link.current?.close();
  }, [token]);

  useEffect(() => {
    if (focus !== undefined) link.current?.send('watch', { live: true, subtasks: true, focus });
  }, [focus?.taskId, focus?.subtaskId]);

  useLayoutEffect(() => {
    if (version === 0) return;
    measures.renders++;
    const now = Date.now();
    if (measures.firstRenderMs === null) measures.firstRenderMs = performance.now();
    if (measures.allRowsMs === null && rowsIn.current) measures.allRowsMs = performance.now();
    const oldest = store.drawn();
    if (measures.renders > 1 && Number.isFinite(oldest)) {
      measures.lags.push(now - oldest);
      if (measures.lags.length > 2000) measures.lags.shift();
    }
  }, [version]);

  if (token === undefined || connection.status === 'refused') {
    return <TokenForm error={connection.status === 'refused' ? connection.error : undefined} onToken={t => (sessionStorage.setItem(TOKEN_KEY, t), setConnection({ status: 'connecting' }), setToken(t))} />;
  }

  // Lists are rebuilt only when their rows came or a choice changed, not every frame.
  const agents = useMemo(() => [...store.agents.values()].filter(a => agentFilter === '' || a.row.id.includes(agentFilter) || a.row.state === agentFilter), [store.agentsVersion, agentFilter]);
  const alive = useMemo(() => {
    let n = 0;
    for (const a of store.agents.values()) if (a.row.state === 'alive') n++;
    return n;
  }, [store.agentsVersion]);
  const tasks = useMemo(() => [...store.tasks.values()].sort(compareTasks), [store.tasksVersion]);
  const taskId = selectedTask !== undefined && store.tasks.has(selectedTask) ? selectedTask : (tasks.find(t => t.state === 'running')?.id ?? tasks[0]?.id);
  const table = store.subtasks.get(taskId ?? '');
  // Rows of one state: their indices, found again when rows came; all of them: none to find.
  const shown = useMemo(() => (stateFilter === '' ? undefined : table?.select(stateFilter)), [store.subtasksVersion, table, stateFilter]);
  const at = (k: number): number => (shown === undefined ? k : (shown[k] as number));
  const graph = useMemo(() => <TopologyGraph topology={store.topology} agents={store.agents} />, [store.topologyVersion]);
  // Ages of beats and changes as of the agents' last numbers: they move once a second, not every frame.
  const now = store.agentsAt;
  // Panels are made again only when what they show came (a batch of subtask rows leaves the
  // agents, the attention strip and the graph as they were: Preact skips an element it gets again).
  const attention = useMemo(
    () => (
      <section class="attention" data-testid="attention">
        <h2>Needs attention</h2>
        {store.attention.length === 0 ? <p class="muted">nothing: every agent beats, nothing waits</p> : null}
        <ul>
          {store.attention.map((item, i) => (
            <li class={item.kind} key={i}>
              <b>{item.kind}</b> {item.text}
            </li>
          ))}
        </ul>
      </section>
    ),
    [store.attention],
  );
  const agentList = useMemo(
    () => <VirtualList testId="agents" count={agents.length} rowHeight={28} height={340} stamp={i => [agents[i]?.row, agents[i]?.history, now]} row={i => agentLine(agents[i] as AgentEntry, now)} />,
    [agents, now],
  );
  const switches = useMemo(
    () => (
      <ul class="switches" data-testid="switches">
        {store.topology.switches.length === 0 ? <li class="muted">no switch yet</li> : null}
        {store.topology.switches.map((s, i) => (
          <li key={i}>
            <b>{s.from} → {s.to}</b> {s.reason}{' '}
            <small>{Object.entries(s.scores).map(([p, v]) => `${p} ${v.toFixed(2)}`).join(' · ')}</small>
          </li>
        ))}
      </ul>
    ),
    [store.topology],
  );

  return (
    <main>
      <header>
        <h1>rxswarm</h1>
        <span class={`conn ${connection.status}`} data-testid="connection">
          {connection.status === 'lost' ? `reconnecting: ${connection.error}` : connection.status}
        </span>
        <span>protocol <b data-testid="protocol">{store.protocol ?? '—'}</b></span>
        <span>{alive}/{store.agents.size} agents alive</span>
        <span data-testid="running-count">{tasks.filter(t => t.state === 'running').length} running</span>
        <span>{tasks.filter(t => t.state === 'queued').length} queued</span>
        {notice === '' ? null : <span class="notice" data-testid="notice">{notice}</span>}
      </header>

      {attention}

      <div class="grid">
        <section>
          <h2>Agents <input placeholder="filter: id or state" value={agentFilter} onInput={e => setAgentFilter((e.target as HTMLInputElement).value)} /></h2>
          <div class="thead agents-row">
            <span>agent</span><span>state</span><span>phi</span><span>phi, last minute</span><span>last beat</span><span>running/slots</span><span>usage</span><span>last changes</span>
          </div>
          {agentList}
        </section>

        <section>
          <h2>Topology <small>{store.topology.protocol ?? ''}</small></h2>
          {graph}
          {switches}
        </section>
      </div>

      <section>
        <h2>Tasks</h2>
        <table class="tasks" data-testid="tasks">
          <thead>
            <tr><th>task</th><th>state</th><th>progress</th><th>done / failed / all</th><th>queue</th><th>protocol</th><th /></tr>
          </thead>
          <tbody>
            {tasks.map(t => (
              <TaskLine task={t} selected={t.id === taskId} key={t.id} onSelect={() => setSelectedTask(t.id)} onCancel={() => link.current?.send('cancel-task', { taskId: t.id })} />
            ))}
          </tbody>
        </table>
      </section>

      <div class="grid">
        <section>
          <h2>
            Subtasks of {taskId ?? '—'}{' '}
            <select value={stateFilter} onChange={e => setStateFilter((e.target as HTMLSelectElement).value)}>
              <option value="">all</option>
              {['pending', 'waiting', 'running', 'done', 'failed'].map(s => <option value={s} key={s}>{s}</option>)}
            </select>
          </h2>
          <VirtualList
            testId="subtasks"
            count={shown?.length ?? table?.length ?? 0}
            rowHeight={24}
            height={360}
            stamp={k => {
              const i = at(k);
              return [table, i, table?.revisionOf(i), focus?.taskId === taskId && focus?.subtaskId === table?.idAt(i)];
            }}
            row={k => {
              const s = (table as SubtaskTable).row(at(k));
              return (
              <div class={`subtask-row ${s.state} ${focus?.subtaskId === s.id && focus.taskId === s.taskId ? 'focused' : ''}`} onClick={() => setFocus({ taskId: s.taskId, subtaskId: s.id })} data-subtask={s.id}>
                <span class="id">{s.id}</span>
                <span class={`badge ${s.state}`}>{s.hedged ? 'hedged' : s.state}</span>
                <span>{s.agent ?? ''}</span>
                <span>{s.attempts > 1 ? `${s.attempts} attempts` : ''}</span>
                <span class="bar"><i style={`width:${pct(s.progress)}`} /></span>
                <span class="reason">{s.reason ?? ''}</span>
              </div>
              );
            }}
          />
        </section>
        <section>
          <h2>Timeline {focus === undefined ? '' : `of ${focus.subtaskId}`}</h2>
          {focus === undefined ? <p class="muted">choose a subtask</p> : <Timeline entries={store.timeline?.subtaskId === focus.subtaskId && store.timeline.taskId === focus.taskId ? store.timeline.entries : []} />}
        </section>
      </div>
    </main>
  );
}

/** One agent's line: state, phi and its last minute, beat age, slots, usage, last changes. */
function agentLine({ row, history }: AgentEntry, now: number) {
  return (
    <div class={`agents-row ${row.state}`} data-agent={row.id} data-state={row.state} title={row.detail ?? ''}>
      <span class="id">{row.id}</span>
      <span class={`badge ${row.state}`}>{row.state}</span>
      <span>{row.phi === null ? '—' : row.phi.toFixed(2)}</span>
      <Sparkline values={history} />
      <span>{row.lastBeatAt === null ? '—' : ago(Math.max(0, now - row.lastBeatAt))}</span>
      <span>{row.running}/{row.slots}</span>
      <span class="bar"><i style={`width:${pct(Math.min(1, row.usage))}`} /></span>
      <span class="changes" data-transitions={row.transitions.map(t => t.state).join(' ')}>
        {row.transitions.slice(-3).map(t => `${t.state} ${ago(Math.max(0, now - t.at))} ago`).join(' → ')}
      </span>
    </div>
  );
}

function TaskLine({ task, selected, onSelect, onCancel }: { task: TaskRow; selected: boolean; onSelect: () => void; onCancel: () => void }) {
  const [arming, setArming] = useState(false);
  useEffect(() => {
    if (!arming) return undefined;
    const timer = setTimeout(() => setArming(false), 4000);
    return () => clearTimeout(timer);
  }, [arming]);
  const cancellable = task.state === 'queued' || task.state === 'running';
  return (
    <tr class={`${task.state} ${selected ? 'selected' : ''}`} onClick={onSelect} data-task={task.id} data-state={task.state} data-progress={task.progress}>
      <td class="id">{task.id}</td>
      <td><span class={`badge ${task.state}`}>{task.state}</span>{task.error === undefined ? '' : <small> {task.error}</small>}</td>
      <td>
        <span class="bar wide split" title={`${task.completed} done, ${task.failed} failed, ${task.running} running`}>
          <i style={`width:${pct(task.subtasks === 0 ? task.progress : task.completed / task.subtasks)}`} />
          <i class="failed" style={`width:${pct(task.subtasks === 0 ? 0 : task.failed / task.subtasks)}`} />
        </span>{' '}
        {pct(task.progress)}
      </td>
      <td>{task.completed} / {task.failed} / {task.subtasks}</td>
      <td>{task.queuePosition === null ? '' : `#${task.queuePosition}`}</td>
      <td>{task.protocol ?? ''}</td>
      <td>
        {cancellable ? (
          <button
            class={arming ? 'danger' : ''}
            data-testid={`cancel-${task.id}`}
            onClick={e => {
              e.stopPropagation();
              if (!arming) return setArming(true);
              setArming(false);
              onCancel();
            }}
          >
            {arming ? 'really cancel?' : 'cancel'}
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function TokenForm({ error, onToken }: { error: string | undefined; onToken: (token: string) => void }) {
  const [value, setValue] = useState('');
  return (
    <form
      class="token"
      onSubmit={e => {
        e.preventDefault();
        if (value !== '') onToken(value);
      }}
    >
      <h1>rxswarm</h1>
      <p>The coordinator's token (the value of <code>RXSWARM_TOKEN</code> or <code>--token</code> of <code>rxswarm serve</code>). It is kept for this tab only.</p>
      {error === undefined ? null : <p class="error" data-testid="refused">refused: {error}</p>}
      <input type="password" name="token" autocomplete="current-password" value={value} onInput={e => setValue((e.target as HTMLInputElement).value)} autofocus />
      <button type="submit">open</button>
    </form>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
